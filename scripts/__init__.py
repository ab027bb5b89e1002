"""Operational commands, one folder per concern: deploy/ (Cloud Run: deploy, canary and its gate, rollback,
jobs, monitoring), image/ (the container engine, the base image, building and pushing the image), load/
(Locust load tests and soaks, their reports) and dev/ (the developer's tools: generated docs, the GCS emulator,
mutation report, fresh-machine test, audit)."""
