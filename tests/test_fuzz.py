"""Robustness: schemathesis generates requests from the published OpenAPI spec against the real server.
Checks: no 5xx, documented status codes and content types, responses that match their schemas, and invalid
data rejected while valid data is accepted."""

import re
import subprocess
import sys
from pathlib import Path

MIN_REQUESTS = 1000
# A columnar batch's columns must have the same length, which JSON Schema cannot say: schema-valid columns of
# different lengths are rightly answered 422, so /predict_batch is exempt from "valid data is accepted".
# tests/test_validation.py covers that rule; every other check still runs on every operation.
CONFIG = """
[[operations]]
include-path = "/predict_batch"
checks.positive_data_acceptance.enabled = false
"""


def test_openapi_fuzzing_finds_no_server_error_and_no_schema_violation(served, tmp_path):
    schemathesis = Path(sys.executable).with_name("schemathesis")
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    result = subprocess.run(
        [
            str(schemathesis),
            "--config-file",
            str(config),
            "run",
            served.url + "/docs.json",
            "--max-examples",
            "500",
            "--seed",
            "20261122",
            "--request-timeout",
            "10",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # its example cache stays out of the repo
    )
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    generated = int(re.search(r"(\d+) generated", summary).group(1))
    print(f"schemathesis: {generated} generated requests")
    assert generated >= MIN_REQUESTS, summary
    assert "No issues found" in summary
