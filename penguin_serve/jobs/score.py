"""Bulk scoring: the service's model over CSV tables of any size, as the tasks of a Cloud Run Job or by hand.

    python -m penguin_serve.jobs.score --input gs://BUCKET/in/ --output gs://BUCKET/out/ [--key-column id]
    python -m penguin_serve.jobs.score --input penguins.csv --output scored/ --task-index 0 --task-count 1

Each task takes every N-th input file (CLOUD_RUN_TASK_INDEX of CLOUD_RUN_TASK_COUNT, or the flags), reads it
in chunks of 10,000 rows (the API's largest batch), validates each chunk with the API's own schema
(PenguinColumns: the same rules, the same error entries), and writes, per chunk, the predictions of its valid
rows (the API's answer columns, after the row's key) and its rejected rows with their errors. The model is
loaded as the service loads it (Cloud Storage version or `latest`, else the bento's; sha256 and self-check
verified), but a Cloud Storage failure fails the task instead of falling back: a job's output names one model.

Exactly once: every output object is created, never overwritten. A retried or re-run task recomputes a chunk,
finds its output already there with the same checksum, and moves on; a finished file (its record in _done/)
is skipped whole; a different checksum (another model or input) stops the task. The task that completes the
last file writes manifest.json: rows in, rows out, rejects, the model version, every part's checksum.

Output layout: predictions/<file>/part-NNNNN.csv, rejects/<file>/part-NNNNN.jsonl, _done/<file>.json,
_model.json (the model version the output is bound to), manifest.json.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .. import answers
from ..contract import MAX_BATCH_RECORDS, Penguin, PenguinColumns, encode_columns, field_errors, table_columns
from ..loading import load_serving_model
from ..model import PenguinModel
from ..settings import SETTINGS
from .locations import AlreadyExists, Location, open_location
from .settings import Job

CHUNK_ROWS = MAX_BATCH_RECORDS
OUTPUT_COLUMNS = ["key", *answers.csv_header()]
REQUIRED = tuple(name for name, field in Penguin.model_fields.items() if field.is_required())


class ConflictingOutput(RuntimeError):
    """The output prefix holds a different result for the same part: another model or another input."""


def log(severity: str, message: str, **fields: Any) -> None:
    """One JSON line on stdout in Cloud Logging's structured format."""
    print(json.dumps({"severity": severity, "message": message, **fields}), flush=True)


def validate(
    columns: dict[str, list], first_row: int, keys: list[str], file: str
) -> tuple[PenguinColumns | None, list[int], list[dict]]:
    """The chunk's valid rows as PenguinColumns, their positions, and a reject entry per invalid row."""
    try:
        return PenguinColumns.model_validate(columns), list(range(len(keys))), []
    except ValidationError as error:
        by_row: dict[int, list[dict]] = defaultdict(list)
        for entry in field_errors(error.errors(include_url=False, include_context=False, include_input=False)):
            if "index" not in entry:  # not about a row: a column of the table itself is wrong
                raise ValueError(f"{file}: {entry['field']}: {entry['message']}") from None
            by_row[entry.pop("index")].append(entry)
    rejects = [{"file": file, "row": first_row + i, "key": keys[i], "detail": by_row[i]} for i in sorted(by_row)]
    kept = [i for i in range(len(keys)) if i not in by_row]
    if not kept:
        return None, [], rejects
    valid = PenguinColumns.model_validate({name: [values[i] for i in kept] for name, values in columns.items()})
    return valid, kept, rejects


def score_chunk(
    model: PenguinModel, header: list[str], rows: list[list[str]], first_row: int, key_column: str | None, file: str
) -> tuple[bytes, bytes, int, int]:
    """(predictions CSV, rejects JSON lines, rows out, rows rejected) for one chunk of a file's rows."""
    cells = dict(zip(header, map(list, zip(*rows))))
    keys = cells[key_column] if key_column else [str(first_row + i) for i in range(len(rows))]
    columns = table_columns(cells)
    valid, kept, rejects = validate(columns, first_row, keys, file)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(OUTPUT_COLUMNS)
    if valid is not None:
        features = encode_columns(valid)
        built = answers.build(model, features, model.probabilities(features))
        writer.writerows(answers.csv_rows(built, [keys[i] for i in kept]))
    rejected = "".join(json.dumps(entry) + "\n" for entry in rejects)
    return out.getvalue().encode(), rejected.encode(), len(kept), len(rejects)


def create(output: Location, name: str, data: bytes, content_type: str) -> str:
    """Create name, or accept it if it holds exactly these bytes already (a retry); its crc32c."""
    try:
        return output.create(name, data, content_type)
    except AlreadyExists as existing:
        from ..model import crc32c_base64

        if existing.crc32c != crc32c_base64(data):
            raise ConflictingOutput(
                f"{output.describe()}/{name} holds a different result: another model or input wrote it"
            ) from None
        return existing.crc32c


def batched(rows: Iterable[list[str]], size: int) -> Iterable[list[list[str]]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


@dataclasses.dataclass
class Progress:
    """Rows done and their rate over a task's files; ETA from the bytes still to read at the rate so far."""

    task: int
    total_bytes: int
    started: float = dataclasses.field(default_factory=time.monotonic)
    rows_done: int = 0
    bytes_done: float = 0.0

    def advance(self, rows: int, fraction_bytes: float, file: str) -> None:
        self.rows_done += rows
        self.bytes_done += fraction_bytes
        elapsed = time.monotonic() - self.started
        rate = self.rows_done / elapsed if elapsed > 0 else 0.0
        remaining_s = elapsed * max(self.total_bytes - self.bytes_done, 0) / self.bytes_done if self.bytes_done else None
        log(
            "INFO",
            f"task {self.task}: {self.rows_done} rows, {rate:,.0f} rows/s",
            task=self.task,
            file=file,
            rows_done=self.rows_done,
            rows_per_s=round(rate),
            eta_s=None if remaining_s is None else round(remaining_s, 1),
        )


def score_file(
    model: PenguinModel, source: Location, output: Location, file: str, key_column: str | None, progress: Progress
) -> None:
    stem = file.removesuffix(".csv")
    record_name = f"_done/{stem}.json"
    if output.exists(record_name):
        log("INFO", f"{file}: scored before, skipped", task=progress.task, file=file)
        progress.advance(0, source.size(file), file)
        return
    data = source.read(file)
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig")))
    header = next(reader, [])
    missing = [name for name in (*REQUIRED, *([key_column] if key_column else [])) if name not in header]
    if missing:
        raise ValueError(f"{file}: no column {', '.join(missing)} (columns: {', '.join(header)})")
    total_rows = max(data.count(b"\n") - 1, 1)
    record: dict[str, Any] = {
        "file": file,
        "rows_in": 0,
        "rows_out": 0,
        "rejects": 0,
        "model_version": model.version,
        "parts": [],
    }
    for index, rows in enumerate(batched(reader, CHUNK_ROWS)):
        predictions, rejects, rows_out, rejected = score_chunk(model, header, rows, record["rows_in"] + 1, key_column, file)
        part = {"rows_in": len(rows), "rows_out": rows_out, "rejects": rejected}
        if rejected:  # before the predictions part, which marks the chunk done
            part["rejects_name"] = f"rejects/{stem}/part-{index:05d}.jsonl"
            part["rejects_crc32c"] = create(output, part["rejects_name"], rejects, "application/jsonl")
        part["name"] = f"predictions/{stem}/part-{index:05d}.csv"
        part["crc32c"] = create(output, part["name"], predictions, "text/csv")
        record["parts"].append(part)
        for key in ("rows_in", "rows_out", "rejects"):
            record[key] += part[key]
        progress.advance(len(rows), len(data) * len(rows) / total_rows, file)
    create(output, record_name, json.dumps(record, indent=1).encode(), "application/json")


def bind_model(output: Location, model: PenguinModel) -> None:
    """One output prefix, one model: the first task records the version, the others must match it."""
    try:
        output.create("_model.json", json.dumps({"model_version": model.version}).encode(), "application/json")
    except AlreadyExists:
        bound = json.loads(output.read("_model.json"))["model_version"]
        if bound != model.version:
            raise ConflictingOutput(f"{output.describe()} holds predictions of model {bound}, not {model.version}") from None


def finalize(source: Location, output: Location, files: list[str], task: int) -> bool:
    """The manifest, once every input file has its record; True if it exists afterwards."""
    done = set(output.list(".json"))
    if any(f"_done/{file.removesuffix('.csv')}.json" not in done for file in files):
        return False
    records = [json.loads(output.read(f"_done/{file.removesuffix('.csv')}.json")) for file in files]
    manifest = {
        "input": source.describe(), "files": len(files),
        "rows_in": sum(r["rows_in"] for r in records), "rows_out": sum(r["rows_out"] for r in records),
        "rejects": sum(r["rejects"] for r in records), "model_version": records[0]["model_version"] if records else None,
        "parts": [{key: part[key] for key in part if key in ("name", "crc32c", "rows_out", "rejects_name", "rejects_crc32c", "rejects")}
                  for r in records for part in r["parts"]],
    }  # fmt: skip
    if len({r["model_version"] for r in records}) > 1:
        raise ConflictingOutput(f"{output.describe()}: files scored by different models")
    try:
        output.create("manifest.json", json.dumps(manifest, indent=1).encode(), "application/json")
        log("INFO", f"task {task} wrote the manifest: {manifest['rows_out']} rows out, {manifest['rejects']} rejects", task=task)
    except AlreadyExists:
        pass  # another task completed the last file at the same moment; the records make both manifests equal
    return True


def bento_model_dir(bento_path: str | None) -> Path:
    """The model the service would serve without Cloud Storage: in a container, the one the bento packs
    ($BENTO_PATH/models/NAME/VERSION, the bento's layout); elsewhere, the model store's."""
    name = SETTINGS.model_tag.split(":")[0]
    if bento_path:
        [version] = [d for d in (Path(bento_path) / "models" / name).iterdir() if d.is_dir()]
        return version
    import bentoml

    return Path(bentoml.models.get(SETTINGS.model_tag).path)


def main(argv: list[str] | None = None) -> int:
    job = Job.from_env()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", default=job.input, help="a CSV file, a folder, or gs://BUCKET/PREFIX (env SCORE_INPUT)")
    parser.add_argument("--output", default=job.output, help="a folder or gs://BUCKET/PREFIX (env SCORE_OUTPUT)")
    parser.add_argument(
        "--key-column",
        default=job.key_column,
        help="the column that identifies a row in the output (default: its row number in its file)",
    )
    parser.add_argument("--task-index", type=int, default=job.task_index, help="env CLOUD_RUN_TASK_INDEX")
    parser.add_argument("--task-count", type=int, default=job.task_count, help="env CLOUD_RUN_TASK_COUNT")
    args = parser.parse_args(argv)
    if not args.input or not args.output:
        parser.error("--input and --output (or SCORE_INPUT and SCORE_OUTPUT) are required")

    # As the service loads it, except that a Cloud Storage failure fails the task: the output must not silently
    # name another model. Retries are Cloud Run's (the job's --max-retries).
    model = load_serving_model(dataclasses.replace(SETTINGS, gcs_strict=True), bento_model_dir(job.bento_path))
    source = open_location(args.input, SETTINGS.storage_emulator_host)
    output = open_location(args.output, SETTINGS.storage_emulator_host)
    files = source.list(".csv")
    mine = files[args.task_index :: args.task_count]
    log(
        "INFO",
        f"task {args.task_index} of {args.task_count}: {len(mine)} of {len(files)} files, model {model.version}",
        task=args.task_index,
        files=mine,
        model_version=model.version,
    )
    try:
        bind_model(output, model)
        progress = Progress(args.task_index, sum(source.size(file) for file in mine))
        for file in mine:
            score_file(model, source, output, file, args.key_column, progress)
        finalize(source, output, files, args.task_index)
    except (ConflictingOutput, ValueError) as error:
        log("ERROR", str(error), task=args.task_index)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
