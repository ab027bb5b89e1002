"""Load test of the penguin classifier: a local server, the container, or a Cloud Run URL.

    locust -f locustfile.py --headless -u 10 -r 5 -t 30s --csv results --only-summary
    locust -f locustfile.py --host https://penguin-serve-xyz.a.run.app           # web UI on :8089
    locust -f locustfile.py --headless --host URL --scenario step --time-scale 0.2

Plain Locust by default: -u, -r, -t and the web UI's form drive the run, against --host (LOCUST_HOST), or
`make run`'s http://127.0.0.1:3000. --scenario (LOCUST_SCENARIO) opts into a load shape: baseline (1 user,
60 s), normal (10 users, 5 min), stress (50 users, 2 min), spike (1 -> 100 users within a minute), step (a
step ramp that stops at the saturation point); --time-scale shortens them.

Every answer is checked: payloads are real penguins from the palmerpenguins table, with the fields of the
service's own record schema (its /docs.json), kept only if the service classifies them right when the run starts, so later a wrong species is a failure; a share of deliberately
invalid requests must get 422 (then they count as successes, under their own name); a share are batches.
Needs only locust and palmerpenguins (requirements-loadtest.txt). For a private Cloud Run service pass an
identity token in LOCUST_ID_TOKEN, or --id-token-from-gcloud.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources

from locust import FastHttpUser, LoadTestShape, events, task
from locust.exception import StopUser

# Each breaks one rule of the API's contract, as an edit of a valid record (DROP removes the field): the
# service must answer 422.
DROP = object()
INVALID_EDITS = (
    {"bill_length_mm": -1},
    {"island": "Atlantis"},
    {"body_mass_g": DROP},
    {"colour": "black"},
    {"bill_length_mm": "long"},
)
MIN_CALIBRATION_ACCURACY = 0.97


@events.init_command_line_parser.add_listener
def add_arguments(parser):
    parser.add_argument(
        "--scenario",
        choices=sorted(["baseline", "normal", "stress", "spike", "step"]),
        default=None,
        env_var="LOCUST_SCENARIO",
        help="a load shape instead of -u/-r/-t (default: none, plain Locust)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        env_var="LOCUST_TIME_SCALE",
        help="multiply every scenario duration by this (0.1: a tenth of the time)",
    )
    parser.add_argument(
        "--invalid-share",
        type=float,
        default=0.05,
        env_var="LOCUST_INVALID_SHARE",
        help="share of requests that are deliberately invalid (must get 422)",
    )
    parser.add_argument(
        "--batch-share", type=float, default=0.05, env_var="LOCUST_BATCH_SHARE", help="share of requests sent to /predict_batch"
    )
    parser.add_argument("--batch-size", type=int, default=100, env_var="LOCUST_BATCH_SIZE", help="records per batch request")
    parser.add_argument(
        "--p95-limit-ms",
        type=float,
        default=500,
        env_var="LOCUST_P95_LIMIT_MS",
        help="step scenario: saturated when p95 latency exceeds this",
    )
    parser.add_argument(
        "--failure-limit",
        type=float,
        default=0.01,
        env_var="LOCUST_FAILURE_LIMIT",
        help="step scenario: saturated when this share of requests fails",
    )
    parser.add_argument(
        "--id-token-from-gcloud",
        action="store_true",
        default=False,
        help="authenticate with `gcloud auth print-identity-token` (private Cloud Run)",
    )


# --- payloads, checked against the deployed model once at start ---------------------------------------

KNOWN: list[tuple[dict, str]] = []  # (record, species the service gave it at calibration)
INVALID_BODIES: list[dict] = []
HEADERS: dict[str, str] = {}
JSON_TYPES = {"number": float, "integer": int, "string": str}


def get_json(url: str, body: object | None = None, timeout: float = 60) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, method="GET" if body is None else "POST", data=data, headers=HEADERS)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def dataset_records(schema: dict) -> list[tuple[dict, str]]:
    """The palmerpenguins table as API records with their true species, one field per property of the API's
    own record schema (Penguin in /docs.json), typed as it says. Rows missing a required field are left out."""
    table = resources.files("palmerpenguins").joinpath("data/penguins.csv").read_text()
    types = {
        name: JSON_TYPES.get(next((t["type"] for t in prop.get("anyOf", [prop]) if t.get("type") != "null"), "string"), str)
        for name, prop in schema["properties"].items()
    }
    records = []
    for row in csv.DictReader(io.StringIO(table)):
        if any(row.get(name, "NA") == "NA" for name in schema["required"]):
            continue
        record = {name: None if row[name] == "NA" else cast(row[name]) for name, cast in types.items() if name in row}
        records.append((record, row["species"]))
    return records


def edited(record: dict, edit: dict) -> dict:
    return {name: value for name, value in {**record, **edit}.items() if value is not DROP}


def identity_token(options) -> str | None:
    if os.environ.get("LOCUST_ID_TOKEN"):
        return os.environ["LOCUST_ID_TOKEN"]
    if options.id_token_from_gcloud:
        return subprocess.run(
            ["gcloud", "auth", "print-identity-token"], check=True, capture_output=True, text=True
        ).stdout.strip()
    return None


@events.init.add_listener
def choose_shape(environment, runner, **_):
    """A scenario's shape only when one is asked for: otherwise -u, -r, -t and the web UI's form rule."""
    options = environment.parsed_options
    if options is not None and options.scenario:
        environment.shape_class = ScenarioShape()
        environment.shape_class.runner = runner


def refuse_to_run(environment, reason: str) -> None:
    """Stops the run before any load, saying why, with exit status 1 (Locust would exit 0: no request failed)."""
    print(reason, file=sys.stderr, flush=True)
    environment.process_exit_code = 1
    environment.runner.quit()


@events.test_start.add_listener
def calibrate(environment, **_):
    """Keep the dataset records that the service classifies as their true species (it should be nearly all:
    the model's accuracy over the dataset is >= 0.97; below that the run aborts). During the run each of them
    must keep getting that species."""
    token = identity_token(environment.parsed_options)
    HEADERS.clear()
    HEADERS.update({"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})})
    host = (environment.host or PenguinUser.host).rstrip("/")
    try:
        labelled = dataset_records(get_json(host + "/docs.json")["components"]["schemas"]["Penguin"])
    except urllib.error.HTTPError as refused:
        if refused.code not in (401, 403):
            raise
        return refuse_to_run(
            environment,
            f"{host} answered {refused.code} {refused.reason}: a private Cloud Run service needs an identity token: "
            "add --id-token-from-gcloud, or set LOCUST_ID_TOKEN",
        )
    answers = get_json(host + "/predict_batch", [record for record, _ in labelled])
    KNOWN.clear()
    KNOWN.extend((record, species) for (record, species), answer in zip(labelled, answers) if answer["prediction"] == species)
    INVALID_BODIES[:] = [edited(KNOWN[0][0], edit) for edit in INVALID_EDITS] if KNOWN else []
    accuracy = len(KNOWN) / len(labelled)
    print(f"calibration: {len(KNOWN)} of {len(labelled)} dataset records classified correctly ({accuracy:.3f})")
    if accuracy < MIN_CALIBRATION_ACCURACY:
        refuse_to_run(environment, f"the service's accuracy {accuracy:.3f} < {MIN_CALIBRATION_ACCURACY}: not load-testing it")


class PenguinUser(FastHttpUser):
    """A client sending requests back to back (no think time): the user count is the concurrency."""

    host = "http://127.0.0.1:3000"  # `make run`; --host or LOCUST_HOST for anything else

    @task
    def request(self):
        if not KNOWN:
            raise StopUser()
        options = self.environment.parsed_options
        draw = random.random()
        if draw < options.invalid_share:
            self.invalid()
        elif draw < options.invalid_share + options.batch_share:
            self.batch(options.batch_size)
        else:
            self.single()

    def single(self):
        record, species = random.choice(KNOWN)
        with self.client.post("/predict", json=record, headers=HEADERS, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
            elif response.json().get("prediction") != species:
                response.failure(f"wrong species: {response.json().get('prediction')} for a known {species}")

    def batch(self, size):
        picked = random.choices(KNOWN, k=size)
        with self.client.post("/predict_batch", json=[r for r, _ in picked], headers=HEADERS, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
            elif [a["prediction"] for a in response.json()] != [s for _, s in picked]:
                response.failure("wrong species in a batch of known records")

    def invalid(self):
        body = random.choice(INVALID_BODIES)
        with self.client.post(
            "/predict", json=body, headers=HEADERS, catch_response=True, name="/predict [invalid, expects 422]"
        ) as response:
            if response.status_code == 422:
                response.success()
            else:
                response.failure(f"invalid input answered {response.status_code}, expected 422")


# --- scenarios -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    until_s: float  # end of this stage, seconds from the start (before time scaling)
    users: int
    spawn_rate: float


SCENARIOS = {
    "baseline": [Stage(60, 1, 1)],
    "normal": [Stage(300, 10, 2)],
    "stress": [Stage(120, 50, 10)],
    # 1 user for 10 s, 100 users within the next minute, hold 30 s, back to 1 for 20 s
    "spike": [Stage(10, 1, 1), Stage(70, 100, 100 / 60), Stage(100, 100, 100), Stage(120, 1, 100)],
    # 30 s at each level; stops early once saturated (ScenarioShape.saturated)
    "step": [Stage(30 * (i + 1), users, users) for i, users in enumerate((1, 2, 5, 10, 20, 30, 40, 60, 80, 100))],
}


class ScenarioShape(LoadTestShape):
    """The scenario named by --scenario, its durations multiplied by --time-scale. Abstract for Locust's
    discovery, so that it applies only when choose_shape installs it."""

    abstract = True

    def tick(self):
        options = self.runner.environment.parsed_options
        elapsed = self.get_run_time() / options.time_scale
        if options.scenario == "step" and self.saturated(options):
            return None
        for stage in SCENARIOS[options.scenario]:
            if elapsed < stage.until_s:
                return stage.users, stage.spawn_rate
        return None

    def saturated(self, options) -> bool:
        total = self.runner.stats.total
        if total.num_requests < 50:
            return False
        p95 = total.get_current_response_time_percentile(0.95) or 0
        if p95 > options.p95_limit_ms or total.fail_ratio > options.failure_limit:
            print(
                f"saturated at {self.get_current_user_count()} users: current p95 {p95:.0f} ms, failures {total.fail_ratio:.2%}"
            )
            return True
        return False
