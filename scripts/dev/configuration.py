"""Writes docs/configuration.md, every environment variable an entry point reads, from where each is declared:
penguin_serve/settings.py (the service), penguin_serve/jobs/settings.py (the scoring job's tasks),
scripts/deploy/settings.py (the Cloud Run deploy and the canary's gate), and TOOLS below (the build, test and
load-test tools). tests/test_configuration.py checks that the file is current and complete.

    .venv/bin/python -m scripts.dev.configuration > docs/configuration.md
"""

from __future__ import annotations

from penguin_serve.configuration import reference
from penguin_serve.jobs.settings import Job
from penguin_serve.settings import Settings
from scripts.deploy.settings import Canary, Deploy

SECTIONS = (
    ("The service", "`bentoml serve`, the image, Cloud Run; read by `penguin_serve/settings.py`", Settings),
    ("The Cloud Run deploy", "`python -m scripts.deploy.cloudrun`; read by `scripts/deploy/settings.py`", Deploy),
    ("The canary's gate", "`python -m scripts.deploy.cloudrun canary`; read by `scripts/deploy/settings.py`", Canary),
    ("The scoring job's tasks", "`python -m penguin_serve.jobs.score`; read by `penguin_serve/jobs/settings.py`", Job),
)

# Read by the build, test and load-test tools, outside Python's settings: (variable, default, meaning, read by).
TOOLS = (
    (
        "PORT",
        "3000",
        "the port `make run` serves on; in the image, the port the server listens on (Cloud Run sets 8080)",
        "Makefile, the image's entrypoint",
    ),
    ("PYTHON", "python3", "the interpreter `make` builds the virtual environments with: 3.11, 3.12 or 3.13", "Makefile"),
    ("BENTOML_HOME", "~/bentoml", "BentoML's model and bento store", "train.py, bentoml, scripts/image/image.sh"),
    ("LOADTEST_ARGS", "unset", "arguments for `make loadtest` (python -m scripts.load.loadtest --help)", "Makefile"),
    ("PENGUIN_IMAGE", "penguin-serve", "the image name `make image` builds", "scripts/image/image.sh"),
    (
        "REGISTRY",
        "AR_REGION-docker.pkg.dev/GCP_PROJECT/AR_REPOSITORY",
        "where scripts/image/push-image.sh pushes",
        "scripts/image/push-image.sh",
    ),
    ("AR_REGION", "europe-west1", "the Artifact Registry region", "scripts/image/push-image.sh"),
    ("AR_REPOSITORY", "penguin-serve", "the Artifact Registry repository", "scripts/image/push-image.sh"),
    ("IMAGE_NAME", "penguin-serve", "the image's name in the repository", "scripts/image/push-image.sh"),
    ("DOCKER", "docker", "the Docker CLI to run", "scripts/image/base-image.sh, scripts/image/image_breakdown.py"),
    (
        "DISTRO",
        "bookworm",
        "the Debian release `make test-fresh` runs on: bookworm (12) or trixie (13)",
        "scripts/dev/test-fresh.sh",
    ),
    ("SUITE", "bookworm", "the Debian release scripts/image/base-image.sh bootstraps", "scripts/image/base-image.sh"),
    (
        "PACKAGES",
        "python3,python3-venv,python3-pip,ca-certificates",
        "the packages scripts/image/base-image.sh puts in its root",
        "scripts/image/base-image.sh",
    ),
    (
        "DOCKERD_LOG",
        "/var/log/penguin-dockerd.log",
        "where a dockerd started by the scripts logs",
        "scripts/image/container-engine.sh",
    ),
    ("SOURCE_COMMIT", "`git rev-parse HEAD`", "the commit recorded in the model's metadata", "train.py"),
    ("LOCUST_HOST", "http://127.0.0.1:3000", "the server to load-test (Locust's own --host)", "locustfile.py"),
    ("LOCUST_ID_TOKEN", "unset", "an identity token for a private Cloud Run service", "locustfile.py"),
    ("LOCUST_SCENARIO", "unset", "a load shape instead of -u/-r/-t: baseline, normal, stress, spike, step", "locustfile.py"),
    ("LOCUST_TIME_SCALE", "1.0", "multiply every scenario duration by this", "locustfile.py"),
    ("LOCUST_INVALID_SHARE", "0.05", "share of requests that are deliberately invalid (must get 422)", "locustfile.py"),
    ("LOCUST_BATCH_SHARE", "0.05", "share of requests sent to /predict_batch", "locustfile.py"),
    ("LOCUST_BATCH_SIZE", "100", "records per batch request", "locustfile.py"),
    ("LOCUST_P95_LIMIT_MS", "500", "step scenario: saturated when p95 latency exceeds this", "locustfile.py"),
    ("LOCUST_FAILURE_LIMIT", "0.01", "step scenario: saturated when this share of requests fails", "locustfile.py"),
    (
        "MODEL_DIR",
        "models",
        "the exported model the benchmark's FastAPI peers serve",
        "benchmarks/numpy_app.py, benchmarks/reference_app.py",
    ),
    (
        "PENGUIN_PROBE_DIR",
        "unset",
        "set by `make bench` for its memory phase: where each process writes its samples",
        "benchmarks/probe/sitecustomize.py",
    ),
    (
        "MUTATE_STARTED",
        "now",
        "set by `make mutate`: when the run began, for the report's duration",
        "scripts/dev/mutation_report.py",
    ),
    ("CI", "unset", "`true` on CI: a skipped test fails the run", "tests/conftest.py, scripts/dev/test-fresh.sh"),
    ("PENGUIN_TEST_TIMINGS", "unset", "set by `make timings`: where the test run records its duration", "tests/conftest.py"),
    (
        "PENGUIN_WRITE_EXAMPLES",
        "unset",
        "set: the Cloud Run test writes its good rollout's decision record to docs/canary-record.example.jsonl",
        "tests/test_cloud_run_releases.py",
    ),
    ("FAULT_ERROR_SHARE", "0", "the test wrapper image's share of prediction requests answered 500", "tests/faulty_image"),
    ("FAULT_DELAY_S", "0", "the test wrapper image's delay added to each prediction request", "tests/faulty_image"),
    ("FAULT_SPARED", "5", "the test wrapper image: prediction requests per worker spared the fault", "tests/faulty_image"),
    ("PENGUIN_SCREENSHOT", "unset", "where the browser test saves the front page's picture", "tests/test_front_page.py"),
    ("PENGUIN_DASHBOARD_PNG", "unset", "where the monitoring test draws the dashboard", "tests/test_monitoring.py"),
)


def escaped(cell: str) -> str:
    """A table cell's text with its pipes escaped, so that `str | None` stays one cell."""
    return cell.replace("|", "\\|")


def markdown() -> str:
    lines = [
        "# Configuration",
        "",
        "*Which environment variables does each part read, with what default and meaning?*",
        "",
        "Generated by `python -m scripts.dev.configuration` from the settings' own declarations;",
        "`tests/test_configuration.py` checks that this page is current and lists every variable any entry point reads.",
    ]
    for title, where, settings in SECTIONS:
        lines += ["", f"## {title}", "", f"{where}.", "", "| variable | default | type | meaning |", "|---|---|---|---|"]
        lines += [
            f"| `{name}` | {default} | `{escaped(kind)}` | {meaning} |" for name, default, kind, meaning in reference(settings)
        ]
    lines += ["", "## Build, test and load-test tools", "", "| variable | default | meaning | read by |", "|---|---|---|---|"]
    lines += [f"| `{name}` | {default} | {meaning} | {where} |" for name, default, meaning, where in TOOLS]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
