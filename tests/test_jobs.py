"""Code: the scoring job in-process over local folders and the GCS emulator: answers, rejects, re-runs that
change nothing, and the refusals (another model, a missing column)."""

import csv
import dataclasses
import json
import time

import pytest
from conftest import KNOWN_RECORDS

from penguin_serve.jobs import score

COLUMNS = ["id", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "extra"]


def write_table(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as table:
        writer = csv.writer(table, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)


def known_rows():
    return [
        [f"k{i}", r["island"], r["bill_length_mm"], r["bill_depth_mm"], r["flipper_length_mm"], r["body_mass_g"], r["sex"], "x"]
        for i, (r, _) in enumerate(KNOWN_RECORDS)
    ]


def run(tmp_path, *args):
    return score.main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--key-column", "id", *args])


def test_local_scoring_answers_rejects_and_reruns_identically(exported_model, tmp_path, capsys):
    write_table(tmp_path / "in" / "a.csv", [*known_rows(), ["bad", "Atlantis", "39", "18", "181", "3750", "NA", "x"]])
    assert run(tmp_path) == 0
    out = tmp_path / "out"
    rows = list(csv.DictReader((out / "predictions" / "a" / "part-00000.csv").open()))
    assert [(r["key"], r["prediction"]) for r in rows] == [(f"k{i}", species) for i, (_, species) in enumerate(KNOWN_RECORDS)]
    [reject] = [json.loads(line) for line in (out / "rejects" / "a" / "part-00000.jsonl").read_text().splitlines()]
    assert (reject["row"], reject["key"], reject["detail"][0]["field"], reject["detail"][0]["type"]) == (
        len(KNOWN_RECORDS) + 1,
        "bad",
        "island",
        "literal_error",
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["rows_in"], manifest["rows_out"], manifest["rejects"]) == (len(KNOWN_RECORDS) + 1, len(KNOWN_RECORDS), 1)
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert any("rows_per_s" in line and line["eta_s"] is not None for line in logged)

    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (out / "_done" / "a.json").unlink()  # as if the task died before its file record: it recomputes, writes nothing new
    assert run(tmp_path) == 0
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert run(tmp_path) == 0  # finished: skipped


def test_progress_counts_down_to_zero_never_below(capsys):
    progress = score.Progress(task=0, total_bytes=1, started=time.monotonic() - 2)
    for _ in range(9):  # ninths of a byte add up to a little over 1 in floating point
        progress.advance(1, 1 / 9, "a.csv")
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["rows_done"] for line in logged] == list(range(1, 10))
    assert logged[0]["eta_s"] == pytest.approx(16, abs=0.5)  # 2 s for a ninth: 16 s to go
    assert str(logged[-1]["eta_s"]) == "0.0"  # not -0.0


def test_another_model_or_a_missing_column_stops_the_task(exported_model, tmp_path, monkeypatch):
    write_table(tmp_path / "in" / "a.csv", known_rows())
    assert run(tmp_path) == 0
    (tmp_path / "out" / "_model.json").write_text(json.dumps({"model_version": "another"}))
    assert run(tmp_path) == 2  # the output is bound to another model
    (tmp_path / "in2").mkdir()
    (tmp_path / "in2" / "b.csv").write_text("island,bill_length_mm\nDream,40\n")
    assert score.main(["--input", str(tmp_path / "in2"), "--output", str(tmp_path / "out2")]) == 2
    with pytest.raises(SystemExit):
        score.main(["--input", str(tmp_path / "in2")])  # no output


def test_scoring_from_and_to_cloud_storage_in_process(exported_model, gcs_emulator, bucket, tmp_path, monkeypatch):
    from penguin_serve.storage import make_client

    monkeypatch.setattr(score, "SETTINGS", dataclasses.replace(score.SETTINGS, storage_emulator_host=gcs_emulator.url))
    write_table(tmp_path / "a.csv", known_rows())
    make_client(gcs_emulator.url).bucket(bucket).blob("in/a.csv").upload_from_filename(tmp_path / "a.csv")
    args = ["--input", f"gs://{bucket}/in", "--output", f"gs://{bucket}/out", "--key-column", "id"]
    assert score.main(args) == 0
    assert score.main(args) == 0
    manifest = json.loads(make_client(gcs_emulator.url).bucket(bucket).blob("out/manifest.json").download_as_bytes())
    assert manifest["rows_out"] == len(KNOWN_RECORDS) and manifest["parts"][0]["name"] == "predictions/a/part-00000.csv"


def test_a_part_stored_with_other_bytes_is_removed_so_that_the_retry_writes_it(gcs_emulator, bucket, fault_proxy):
    from penguin_serve.jobs.locations import open_location
    from penguin_serve.model import crc32c_base64
    from penguin_serve.storage import UploadCorrupted

    output = open_location(f"gs://{bucket}/out", fault_proxy.url)
    fault_proxy.corrupt_uploads, fault_proxy.corrupted_bytes = True, b"Adelie"
    with pytest.raises(UploadCorrupted, match="crc32c"):
        output.create("predictions/a/part-00000.csv", b"key,prediction\n0,Adelie\n", "text/csv")
    fault_proxy.corrupt_uploads = False
    assert output.create("predictions/a/part-00000.csv", b"key,prediction\n0,Adelie\n", "text/csv") == crc32c_base64(
        b"key,prediction\n0,Adelie\n"
    )
