"""Load testing: Locust's own command line and a short scenario run against a real local server, then the
generated report."""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from conftest import REPO_ROOT

from penguin_serve.contract import SPECIES
from penguin_serve.training.dataset import load_dataset

pytestmark = pytest.mark.slow  # starts servers or processes of its own

LOCUST = str(Path(sys.executable).with_name("locust"))


def test_plain_locust_command_line_runs_the_users_and_time_it_is_given(served, tmp_path):
    """The command line penguin-service READMEs give, as typed (host from LOCUST_HOST, -t shortened): no
    scenario takes over -u, -r or -t."""
    result = subprocess.run(
        [
            LOCUST,
            "-f",
            "locustfile.py",
            "--headless",
            "-u",
            "10",
            "-r",
            "5",
            "-t",
            "6s",
            "--csv",
            str(tmp_path / "results"),
            "--only-summary",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "LOCUST_HOST": served.url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    history = [row for row in csv.DictReader((tmp_path / "results_stats_history.csv").open()) if row["Name"] == "Aggregated"]
    users = [int(row["User Count"]) for row in history]
    seconds = int(history[-1]["Timestamp"]) - int(history[0]["Timestamp"]) + 1
    assert max(users) == 10 and users[-1] == 10, users
    assert 5 <= seconds <= 8, seconds
    # -r 5: the ten users arrive over two seconds, not at once.
    full = next(row for row in history if int(row["User Count"]) == 10)
    assert users[0] < 10 and int(full["Timestamp"]) - int(history[0]["Timestamp"]) >= 1, users
    totals = next(row for row in csv.DictReader((tmp_path / "results_stats.csv").open()) if row["Name"] == "Aggregated")
    assert int(totals["Request Count"]) > 100 and int(totals["Failure Count"]) == 0


def test_short_headless_run_checks_answers_counts_422s_as_success_and_reports(served, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.load.loadtest",
            "--url",
            served.url,
            "--scenarios",
            "baseline,spike",
            "--time-scale",
            "0.04",
            "--invalid-share",
            "0.2",
            "--batch-share",
            "0.1",
            "--batch-size",
            "20",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_dir = next(tmp_path.iterdir())
    # Calibration keeps the birds the server classifies right: as many as its own answers say, in each scenario.
    birds = [p.model_dump(mode="json") for p in load_dataset().penguins]
    answers = requests.post(served.url + "/predict_batch", json=birds, timeout=30).json()
    right = sum(answer["prediction"] == SPECIES[label] for answer, label in zip(answers, load_dataset().labels))
    assert re.findall(r"calibration: (\d+) of (\d+) dataset records", result.stdout) == [(str(right), str(len(birds)))] * 2

    for scenario in ("baseline", "spike"):
        for suffix in ("_stats.csv", "_stats_history.csv", "_failures.csv", ".html", ".png"):
            assert (run_dir / f"{scenario}{suffix}").stat().st_size > 0, f"{scenario}{suffix}"
    rows = {row["Name"]: row for row in csv.DictReader((run_dir / "baseline_stats.csv").open())}
    assert int(rows["Aggregated"]["Failure Count"]) == 0
    assert int(rows["/predict [invalid, expects 422]"]["Request Count"]) > 0  # answered 422: successes
    assert int(rows["/predict_batch"]["Request Count"]) > 0 and int(rows["/predict"]["Request Count"]) > 0

    report = (run_dir / "LOAD_TEST_REPORT.md").read_text()
    assert "## baseline" in report and "## spike" in report and "![spike](spike.png)" in report
    # The report's numbers are the CSV's numbers.
    total = re.search(r"## baseline\n\n(?:.*\n){2}(?:.*\n)*?\| \*\*all\*\* \| (\d+) \| (\d+) \|", report)
    assert total and (int(total.group(1)), int(total.group(2))) == (int(rows["Aggregated"]["Request Count"]), 0)
    assert f"--host {served.url} --scenario baseline" in report


def test_a_wrong_species_is_a_failure(tmp_path):
    """A stand-in service (the one fault a real model cannot be made to show on demand) that classifies the
    calibration batch right and then calls every single penguin a Gentoo: Locust must count failures."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from penguin_serve.contract import SPECIES, Penguin
    from penguin_serve.training.dataset import load_dataset

    truth = [SPECIES[label] for label in load_dataset().labels]
    spec = json.dumps({"components": {"schemas": {"Penguin": Penguin.model_json_schema()}}}).encode()

    class TurnsWrong(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # the API's own record schema, which the locustfile builds its records from
            self.send_response(200)
            self.send_header("Content-Length", str(len(spec)))
            self.end_headers()
            self.wfile.write(spec)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if isinstance(body, list):
                answer = [{"prediction": species} for species in truth[: len(body)]]
            else:
                answer = {"prediction": "Gentoo"}
            payload = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), TurnsWrong)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = subprocess.run(
            [
                LOCUST,
                "-f",
                "locustfile.py",
                "--headless",
                "--host",
                f"http://127.0.0.1:{server.server_address[1]}",
                "--scenario",
                "baseline",
                "--time-scale",
                "0.03",
                "--invalid-share",
                "0",
                "--batch-share",
                "0",
                "--csv",
                str(tmp_path / "wrong"),
                "--only-summary",
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.shutdown()
    assert result.returncode == 1
    failures = list(csv.DictReader((tmp_path / "wrong_failures.csv").open()))
    assert failures and all("wrong species: Gentoo for a known" in f["Error"] for f in failures)
    assert {re.search(r"for a known (\w+)", f["Error"]).group(1) for f in failures} == {"Adelie", "Chinstrap"}


def test_locustfile_needs_only_locust_and_the_penguin_table():
    """What requirements-loadtest.txt installs on a separate load-generator machine is enough."""
    import ast

    tree = ast.parse((REPO_ROOT / "locustfile.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert imported - set(sys.stdlib_module_names) == {"locust"}
    assert '"palmerpenguins"' in (REPO_ROOT / "locustfile.py").read_text()
    assert {"locust", "palmerpenguins"} <= {
        line.split("==")[0] for line in (REPO_ROOT / "requirements-loadtest.txt").read_text().splitlines()
    }


def test_soak_runs_locusts_plain_command_and_records_requests_and_memory(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "scripts.load.soak", "--target", "server", "--minutes", "0.25", "--users", "2"]
        + ["--out", str(tmp_path / "soak")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    figures = json.loads((tmp_path / "soak" / "soak.json").read_text())
    assert {path.name for path in (tmp_path / "soak").iterdir()} >= {"soak_stats.csv", "soak_stats_history.csv", "memory.csv"}
    assert figures["users"] == 2 and figures["failures"] == 0 and figures["requests"] > 100
    assert len(figures["memory_mb_every_10_s"]) >= 2 and min(figures["memory_mb_every_10_s"]) > 100
