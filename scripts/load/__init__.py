"""Load tests (Locust against a local server, the container or a URL), soaks, and their reports."""
