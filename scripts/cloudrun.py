"""Cloud Run operations: deploy by digest, canary rollout with smoke tests, rollback, and the Knative YAML.

    .venv/bin/python scripts/cloudrun.py deploy   IMAGE@sha256:...  [--public] [--dry-run]
    .venv/bin/python scripts/cloudrun.py canary   IMAGE@sha256:...  [--steps 10,50,100] [--step-wait-s 60] [--dry-run]
    .venv/bin/python scripts/cloudrun.py rollback [REVISION] [--dry-run]
    .venv/bin/python scripts/cloudrun.py service-yaml IMAGE@sha256:...

Settings come from the environment (defaults in brackets): GCP_PROJECT (required), CLOUD_RUN_REGION
[europe-west1], CLOUD_RUN_SERVICE [penguin-serve], CLOUD_RUN_SERVICE_ACCOUNT
[penguin-serve@PROJECT.iam.gserviceaccount.com], CLOUD_RUN_CPU [1], CLOUD_RUN_MEMORY [1Gi],
CLOUD_RUN_CONCURRENCY [80], CLOUD_RUN_MIN_INSTANCES [0], CLOUD_RUN_MAX_INSTANCES [10], CLOUD_RUN_TIMEOUT_S [30],
GCS_BUCKET_NAME and GCS_MODEL_PREFIX (passed to the service). The service is private unless --public.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import string
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

SERVICE_YAML = Path(__file__).resolve().parent.parent / "deploy" / "service.yaml"
STARTUP_PROBE = "httpGet.path=/readyz,httpGet.port=8080,periodSeconds=1,timeoutSeconds=1,failureThreshold=30"
LIVENESS_PROBE = "httpGet.path=/livez,httpGet.port=8080,periodSeconds=10,timeoutSeconds=1,failureThreshold=3"
SMOKE_RECORD = {"bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181, "body_mass_g": 3750,
                "sex": "male", "island": "Torgersen"}
SMOKE_SPECIES = "Adelie"


@dataclass(frozen=True)
class Config:
    project: str
    region: str
    service: str
    service_account: str
    cpu: str
    memory: str
    concurrency: str
    min_instances: str
    max_instances: str
    timeout_s: str
    gcs_bucket: str
    gcs_prefix: str

    @classmethod
    def from_env(cls, env=os.environ) -> Config:
        project = env.get("GCP_PROJECT") or sys.exit("set GCP_PROJECT")
        return cls(
            project=project,
            region=env.get("CLOUD_RUN_REGION", "europe-west1"),
            service=env.get("CLOUD_RUN_SERVICE", "penguin-serve"),
            service_account=env.get("CLOUD_RUN_SERVICE_ACCOUNT", f"penguin-serve@{project}.iam.gserviceaccount.com"),
            cpu=env.get("CLOUD_RUN_CPU", "1"),
            memory=env.get("CLOUD_RUN_MEMORY", "1Gi"),
            concurrency=env.get("CLOUD_RUN_CONCURRENCY", "80"),
            min_instances=env.get("CLOUD_RUN_MIN_INSTANCES", "0"),
            max_instances=env.get("CLOUD_RUN_MAX_INSTANCES", "10"),
            timeout_s=env.get("CLOUD_RUN_TIMEOUT_S", "30"),
            gcs_bucket=env.get("GCS_BUCKET_NAME", ""),
            gcs_prefix=env.get("GCS_MODEL_PREFIX", "penguin_classifier"),
        )

    @property
    def where(self) -> list[str]:
        return ["--project", self.project, "--region", self.region]


class Gcloud:
    """Runs gcloud, echoing each command; with dry_run only prints it and answers with a placeholder."""

    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run

    def __call__(self, *args: str, placeholder: str = "") -> str:
        print("+ " + shlex.join(["gcloud", *args]), flush=True)
        if self.dry_run:
            return placeholder
        return subprocess.run(["gcloud", *args], check=True, stdout=subprocess.PIPE, text=True).stdout.strip()


def require_digest(image: str) -> str:
    if "@sha256:" not in image:
        sys.exit(f"deploy by digest (IMAGE@sha256:...), not by tag: {image}")
    return image


def deploy_args(config: Config, image: str, public: bool) -> list[str]:
    env_vars = f"GCS_BUCKET_NAME={config.gcs_bucket},GCS_MODEL_PREFIX={config.gcs_prefix}"
    return [
        "run", "deploy", config.service, *config.where,
        "--image", require_digest(image),
        "--port", "8080",
        "--cpu", config.cpu,
        "--memory", config.memory,
        "--concurrency", config.concurrency,
        "--min-instances", config.min_instances,
        "--max-instances", config.max_instances,
        "--timeout", config.timeout_s,
        "--cpu-boost",  # start-up CPU boost: cold start is CPU-bound imports (docs/PERFORMANCE.md)
        "--service-account", config.service_account,
        "--set-env-vars", env_vars,
        "--startup-probe", STARTUP_PROBE,
        "--liveness-probe", LIVENESS_PROBE,
        "--allow-unauthenticated" if public else "--no-allow-unauthenticated",
        "--quiet",
    ]


def deploy(config: Config, gcloud: Gcloud, image: str, public: bool) -> int:
    gcloud(*deploy_args(config, image, public))
    return 0


def smoke_test(url: str, token: str | None) -> bool:
    """The revision answers ready and classifies a known Adelie correctly."""
    import requests

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        ready = requests.get(f"{url}/readyz", headers=headers, timeout=10).status_code == 200
        answer = requests.post(f"{url}/predict", json=SMOKE_RECORD, headers=headers, timeout=10).json()
    except (requests.RequestException, ValueError) as exc:
        print(f"smoke test of {url} failed: {exc}", file=sys.stderr)
        return False
    passed = ready and answer.get("prediction") == SMOKE_SPECIES
    print(f"smoke test of {url}: {'passed' if passed else f'failed (ready={ready}, answer={answer})'}", flush=True)
    return passed


def canary(config: Config, gcloud: Gcloud, image: str, steps: list[int], tag: str, step_wait_s: float, public: bool) -> int:
    previous = gcloud("run", "services", "describe", config.service, *config.where,
                      "--format=value(status.latestReadyRevisionName)", placeholder="<previous-revision>")
    gcloud(*deploy_args(config, image, public), "--no-traffic", "--tag", tag)
    described = gcloud("run", "services", "describe", config.service, *config.where, "--format=json",
                       placeholder=json.dumps({"status": {"traffic": [{"tag": tag, "url": f"https://{tag}---<service-url>"}]}}))
    url = next(t["url"] for t in json.loads(described)["status"]["traffic"] if t.get("tag") == tag)
    token = None if public else gcloud("auth", "print-identity-token", placeholder="<identity-token>")
    for percent in steps:
        if not gcloud.dry_run and not smoke_test(url, token):
            print(f"rollout stopped before {percent} %: all traffic back to {previous}", file=sys.stderr)
            gcloud("run", "services", "update-traffic", config.service, *config.where, "--to-revisions", f"{previous}=100")
            return 1
        gcloud("run", "services", "update-traffic", config.service, *config.where, "--to-tags", f"{tag}={percent}")
        if percent < 100 and not gcloud.dry_run:
            time.sleep(step_wait_s)
    # Promote: the service follows its newest revision again, so the next deploy is not pinned to this one.
    gcloud("run", "services", "update-traffic", config.service, *config.where, "--to-latest")
    return 0


def rollback(config: Config, gcloud: Gcloud, revision: str | None) -> int:
    if revision is None:
        listed = gcloud("run", "revisions", "list", "--service", config.service, *config.where,
                        "--sort-by=~metadata.creationTimestamp", "--limit=2", "--format=value(metadata.name)",
                        placeholder="<newest-revision>\n<previous-revision>")
        names = listed.split()
        if len(names) < 2:
            sys.exit("no previous revision to roll back to")
        revision = names[1]
    gcloud("run", "services", "update-traffic", config.service, *config.where, "--to-revisions", f"{revision}=100")
    return 0


def service_yaml(config: Config, image: str) -> str:
    return string.Template(SERVICE_YAML.read_text()).substitute(**asdict(config), image=require_digest(image))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("deploy", "canary", "service-yaml"):
        command = commands.add_parser(name)
        command.add_argument("image", help="IMAGE@sha256:... as printed by scripts/push-image.sh")
        if name != "service-yaml":
            command.add_argument("--public", action="store_true", help="allow unauthenticated requests")
            command.add_argument("--dry-run", action="store_true", help="print the gcloud commands only")
    canary_parser = commands.choices["canary"]
    canary_parser.add_argument("--steps", default="10,50,100", help="traffic percentages, in order")
    canary_parser.add_argument("--tag", default="canary", help="revision tag (its URL is smoke-tested)")
    canary_parser.add_argument("--step-wait-s", type=float, default=60, help="pause between steps")
    rollback_parser = commands.add_parser("rollback")
    rollback_parser.add_argument("revision", nargs="?", help="revision to send all traffic to (default: the previous one)")
    rollback_parser.add_argument("--dry-run", action="store_true", help="print the gcloud commands only")
    args = parser.parse_args(argv)

    config = Config.from_env()
    if args.command == "service-yaml":
        print(service_yaml(config, args.image), end="")
        return 0
    gcloud = Gcloud(args.dry_run)
    if args.command == "deploy":
        return deploy(config, gcloud, args.image, args.public)
    if args.command == "canary":
        steps = [int(step) for step in args.steps.split(",")]
        return canary(config, gcloud, args.image, steps, args.tag, args.step_wait_s, args.public)
    return rollback(config, gcloud, args.revision)


if __name__ == "__main__":
    sys.exit(main())
