"""Bulk scoring against fake-gcs-server: 1,000,000 rows in 8 files scored by 4 tasks running at once give every
valid row exactly once, the answers /predict gives, and the known-bad rows in rejects with the API's reasons;
a task killed mid-file and the job run again give an identical output; the model is loaded and checked as
the service loads it, and a corrupt one fails the task."""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from conftest import KNOWN_RECORDS, REPO_ROOT

from penguin_serve.training.dataset import load_dataset

FILES, ROWS_PER_FILE, TASKS = 8, 125_000, 4
HEADER = ["id", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]
# Known-bad rows, by global row position: the cell that breaks, and the API's error type for it.
BAD = {
    17: ("island", "Atlantis", "literal_error"),
    250_003: ("bill_length_mm", "long", "float_type"),
    500_000: ("body_mass_g", "-5", "greater_than"),
    999_999: ("flipper_length_mm", "", "float_type"),
}


def table_rows():
    """1,000,000 rows cycling through the dataset's birds, each with its own id, some made invalid on purpose."""
    birds = [p.model_dump(mode="json") for p in load_dataset().penguins]
    for position in range(FILES * ROWS_PER_FILE):
        bird = birds[position % len(birds)]
        row = {"id": f"p{position}", **{name: "" if bird.get(name) is None else bird[name] for name in HEADER[1:]}}
        if position in BAD:
            name, value, _ = BAD[position]
            row[name] = value
        yield [row[name] for name in HEADER]


@pytest.fixture(scope="module")
def big_input(gcs_emulator):
    from penguin_serve.storage import make_client

    bucket = "scoring-test"
    gcs_emulator.create_bucket(bucket)
    client = make_client(gcs_emulator.url)
    rows = table_rows()
    for index in range(FILES):
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(next(rows) for _ in range(ROWS_PER_FILE))
        client.bucket(bucket).blob(f"in/part-{index}.csv").upload_from_string(out.getvalue(), content_type="text/csv")
    return bucket


def run_tasks(gcs_emulator, bucket, output, tasks=range(TASKS), **env):
    """The job's tasks as concurrent processes, as Cloud Run runs them; their exit codes and logs."""
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "penguin_serve.jobs.score",
                "--input",
                f"gs://{bucket}/in",
                "--output",
                f"gs://{bucket}/{output}",
                "--key-column",
                "id",
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={
                **os.environ,
                "STORAGE_EMULATOR_HOST": gcs_emulator.url,
                "CLOUD_RUN_TASK_INDEX": str(task),
                "CLOUD_RUN_TASK_COUNT": str(TASKS),
                **env,
            },
        )
        for task in tasks
    ]
    return [(p.wait(timeout=600), p.stdout.read()) for p in processes]


def objects(gcs_emulator, bucket, prefix):
    from penguin_serve.storage import make_client

    return {b.name.removeprefix(prefix + "/"): b for b in make_client(gcs_emulator.url).list_blobs(bucket, prefix=prefix + "/")}


@pytest.fixture(scope="module")
def served_model(served):
    """The model tag of the test's server (other tests train newer ones into the same store meanwhile)."""
    return {"PENGUIN_MODEL_TAG": f"penguin_classifier:{served.get('/health').json()['model_version']}"}


@pytest.fixture(scope="module")
def scored(big_input, gcs_emulator, served_model):
    started = time.monotonic()
    results = run_tasks(gcs_emulator, big_input, "out", **served_model)
    elapsed = time.monotonic() - started
    assert all(code == 0 for code, _ in results), [log[-2000:] for _, log in results]
    rates = [json.loads(line)["rows_per_s"] for _, log in results for line in log.splitlines() if '"rows_per_s"' in line]
    print(
        f"4 tasks on this machine's 2 cores: {FILES * ROWS_PER_FILE:,} rows in {elapsed:.1f} s; last rows/s per task: {rates[-4:]}"
    )
    return objects(gcs_emulator, big_input, "out"), results


def test_every_valid_row_once_and_every_bad_row_rejected_with_the_apis_reason(scored):
    outputs, _ = scored
    manifest = json.loads(outputs["manifest.json"].download_as_bytes())
    assert (manifest["rows_in"], manifest["rows_out"], manifest["rejects"]) == (
        FILES * ROWS_PER_FILE,
        FILES * ROWS_PER_FILE - len(BAD),
        len(BAD),
    )
    keys = []
    for name, blob in outputs.items():
        if name.startswith("predictions/"):
            keys += [row[0] for row in list(csv.reader(io.StringIO(blob.download_as_text())))[1:]]
    assert len(keys) == len(set(keys)) == FILES * ROWS_PER_FILE - len(BAD)
    rejects = [
        json.loads(line)
        for name, blob in outputs.items()
        if name.startswith("rejects/")
        for line in blob.download_as_text().splitlines()
    ]
    found = {int(r["key"].removeprefix("p")): (r["detail"][0]["field"], r["detail"][0]["type"]) for r in rejects}
    assert found == {position: (name, error) for position, (name, _, error) in BAD.items()}
    assert {r["row"] for r in rejects if r["key"] == "p250003"} == {250_003 % ROWS_PER_FILE + 1}  # row numbers within the file
    # Every part is in the manifest with the checksum Cloud Storage reports for it.
    assert {p["name"]: p["crc32c"] for p in manifest["parts"]} == {
        n: b.crc32c for n, b in outputs.items() if n.startswith("predictions/")
    }


def test_predictions_equal_what_predict_answers_for_the_same_rows(scored, served):
    outputs, _ = scored
    rows = list(csv.DictReader(io.StringIO(outputs["predictions/part-3/part-00007.csv"].download_as_text())))
    table = {row[0]: row for row in islice_rows(3 * ROWS_PER_FILE + 7 * 10_000, 10_000)}
    for row in rows[:: len(rows) // 50]:
        source = dict(zip(HEADER, table[row["key"]]))
        record = {name: None if source[name] == "" else source[name] for name in HEADER[1:]}
        record.update({name: float(record[name]) for name in HEADER[2:6]}, year=int(record["year"]))
        answer = requests.post(served.url + "/predict", json=record, timeout=10).json()
        assert row["prediction"] == answer["prediction"] and row["model_version"] == answer["model_version"]
        assert [float(row[f"probability_{s}"]) for s in answer["probabilities"]] == list(answer["probabilities"].values())
        assert json.loads(row["out_of_distribution"]) == answer["out_of_distribution"]


def islice_rows(start, count):
    from itertools import islice

    return islice(table_rows(), start, start + count)


def test_a_task_killed_mid_file_and_the_job_run_again_give_an_identical_output(scored, big_input, gcs_emulator, served_model):
    reference, _ = scored
    task = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "penguin_serve.jobs.score",
            "--input",
            f"gs://{big_input}/in",
            "--output",
            f"gs://{big_input}/again",
            "--key-column",
            "id",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={
            **os.environ,
            "STORAGE_EMULATOR_HOST": gcs_emulator.url,
            "CLOUD_RUN_TASK_INDEX": "1",
            "CLOUD_RUN_TASK_COUNT": str(TASKS),
            **served_model,
        },
    )
    deadline = time.monotonic() + 120
    while (
        not any(n.startswith("predictions/part-1/part-0000") for n in objects(gcs_emulator, big_input, "again"))
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    task.send_signal(signal.SIGKILL)  # as a failed task dies: no clean-up of its own
    task.wait()
    partial = objects(gcs_emulator, big_input, "again")
    assert 0 < len([n for n in partial if n.startswith("predictions/")]) and "_done/part-1.json" not in partial
    results = run_tasks(gcs_emulator, big_input, "again", **served_model)  # Cloud Run's retry, or the job executed again
    assert all(code == 0 for code, _ in results), [log[-2000:] for _, log in results]
    results = run_tasks(gcs_emulator, big_input, "again", **served_model)  # and once more, after it finished: nothing changes
    assert all(code == 0 for code, _ in results)
    again = objects(gcs_emulator, big_input, "again")
    assert {n: b.crc32c for n, b in again.items()} == {n: b.crc32c for n, b in reference.items()}


def test_the_model_is_loaded_as_the_service_loads_it_and_a_corrupt_one_fails_the_task(
    exported_model, gcs_emulator, bucket, tmp_path
):
    """From Cloud Storage (`latest`), checked; a booster changed behind its metadata stops the task, no output."""
    from penguin_serve.contract import MODEL_NAME
    from penguin_serve.model import BOOSTER_FILE
    from penguin_serve.storage import make_client
    from penguin_serve.training.publish import push_model

    version = push_model(make_client(gcs_emulator.url), bucket, MODEL_NAME, exported_model)
    table = tmp_path / "in.csv"
    table.write_text(
        "island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex\n"
        + "".join(
            f"{r['island']},{r['bill_length_mm']},{r['bill_depth_mm']},{r['flipper_length_mm']},{r['body_mass_g']},{r['sex']}\n"
            for r, _ in KNOWN_RECORDS
        )
    )
    env = {**os.environ, "STORAGE_EMULATOR_HOST": gcs_emulator.url, "GCS_BUCKET_NAME": bucket, "GCS_LOAD_DEADLINE_S": "3"}

    def score_to(output):
        return subprocess.run(
            [sys.executable, "-m", "penguin_serve.jobs.score", "--input", str(table), "--output", str(output)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    run = score_to(tmp_path / "out")
    assert run.returncode == 0, run.stdout + run.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert (manifest["model_version"], manifest["rows_out"]) == (version, len(KNOWN_RECORDS))
    predicted = [row["prediction"] for row in csv.DictReader((tmp_path / "out" / "predictions" / "in" / "part-00000.csv").open())]
    assert predicted == [species for _, species in KNOWN_RECORDS]

    blob = make_client(gcs_emulator.url).bucket(bucket).blob(f"{MODEL_NAME}/{version}/{BOOSTER_FILE}")
    blob.upload_from_string(blob.download_as_bytes().replace(b'"split_conditions":[', b'"split_conditions":[1.0E0,', 1))
    broken = score_to(tmp_path / "out2")
    assert broken.returncode != 0 and "does not match" in broken.stdout + broken.stderr
    assert not (tmp_path / "out2").exists()
