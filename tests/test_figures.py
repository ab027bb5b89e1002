"""Every measured figure in the README and docs/ agrees with the generated file it comes from.

Sources: docs/performance.json (`make bench`), docs/profile.json (`make profile`), docs/soak/
(`python -m scripts.load.soak`: Locust's CSVs and the figures derived from them) and docs/load_test/ (`make loadtest`: Locust's CSVs and run.json). Prose quotes
them; CLAIMS lists each quoted figure as (document, pattern, the figure as its source gives it), so a figure
that goes stale, or a pattern that no longer finds its figure, fails here.
"""

import json
import re
import shutil

import pytest
from conftest import REPO_ROOT
from containers import SERVICE_UID
from readme import commands
from test_image import MAX_BENTO_BYTES, MAX_REST_BYTES

from benchmarks import profile
from benchmarks.bench import report, targets_table
from penguin_serve.conformal import COVERAGE
from penguin_serve.contract import MAX_BATCH_RECORDS
from penguin_serve.settings import Settings
from penguin_serve.training.dataset import load_dataset
from scripts.deploy.cloudrun import GCLOUD_MIN_VERSION
from scripts.load.load_report import history, saturation, write_report

DOCS = REPO_ROOT / "docs"
LOAD_TEST = DOCS / "load_test"
BENCH = json.loads((DOCS / "performance.json").read_text())
PROFILE = json.loads((DOCS / "profile.json").read_text())
SOAK = json.loads((DOCS / "soak" / "soak.json").read_text())
IMAGE = json.loads((DOCS / "image.json").read_text())
TIMINGS = json.loads((DOCS / "test-timings.json").read_text())
LOAD_RUN = json.loads((LOAD_TEST / "run.json").read_text())
STEP = saturation(history(LOAD_TEST, "step"), LOAD_RUN["p95_limit_ms"], LOAD_RUN["failure_limit"])

SUMMARY, RESULTS, IN_PROCESS = BENCH["summary"], BENCH["results"], BENCH["in_process"]


def megabytes(value: float, places: int = 0) -> str:
    return f"{value / 1e6:.{places}f}"


OURS = RESULTS["penguin-serve"]


def count(value: float) -> str:
    return f"{value:,.0f}"


def signed(value: float) -> str:
    """A contribution as the prose writes it: one decimal, with its sign (a minus sign, not a hyphen)."""
    return f"{value:+.1f}".replace("-", "−")


# The explanation docs/explanations.md shows (the answer its curl example prints, which test_readme checks).
[EXPLAINED] = [
    json.loads(command.output)["contributions"]
    for command in commands((DOCS / "explanations.md").read_text())
    if "/explain" in command.text
]


# (document, pattern with one group, the figure as its source gives it)
CLAIMS = [
    ("docs/PERFORMANCE.md", r"In the `make bench` of (\d{4}-\d\d-\d\d)", BENCH["measured_on"]),
    ("docs/PERFORMANCE.md", r"this service answers (\d+(?:,\d{3})*) requests/s at 64 connections", count(OURS["c64"]["rps"])),
    ("docs/PERFORMANCE.md", r"the HTTP ceiling's (\d+(?:,\d{3})*)", count(RESULTS["http-ceiling"]["c64"]["rps"])),
    ("docs/PERFORMANCE.md", r"BentoML's own floor (\d+(?:,\d{3})*)", count(RESULTS["bentoml-floor"]["c64"]["rps"])),
    ("docs/PERFORMANCE.md", r"FastAPI \+ numpy (\d+(?:,\d{3})*)", count(RESULTS["fastapi-numpy"]["c64"]["rps"])),
    ("docs/PERFORMANCE.md", r"the usual FastAPI \+ pandas service (\d+(?:,\d{3})*)", count(RESULTS["reference"]["c64"]["rps"])),
    ("docs/PERFORMANCE.md", r"p50 ([\d.]+) ms and p99 [\d.]+ ms at 64", f"{OURS['c64']['p50']:.1f}"),
    ("docs/PERFORMANCE.md", r"p50 [\d.]+ ms and p99 ([\d.]+) ms at 64", f"{OURS['c64']['p99']:.1f}"),
    ("docs/PERFORMANCE.md", r"1,000-row batches as columns: (\d+(?:,\d{3})*) rows/s", count(OURS["batch_columns"]["rows_per_s"])),
    ("docs/PERFORMANCE.md", r"(\d+) % of XGBoost's in-process speed", f"{100 * SUMMARY['batch_floor_ratio']:.0f}"),
    ("docs/bulk-scoring.md", r"One task scores (\d+(?:,\d{3})*) rows/s", count(BENCH["scoring"]["rows_per_s"])),
    ("docs/bulk-scoring.md", r"(\d+) % of the in-process floor", f"{100 * SUMMARY['scoring_floor_ratio']:.0f}"),
    ("docs/explanations.md", r"The bill length \(([−+][\d.]+) for Adelie", signed(EXPLAINED["bill_length_mm"]["Adelie"])),
    ("docs/explanations.md", r"for Adelie, ([−+][\d.]+) for Chinstrap\)", signed(EXPLAINED["bill_length_mm"]["Chinstrap"])),
    ("docs/explanations.md", r"the island Dream \(([−+][\d.]+) for Chinstrap\)", signed(EXPLAINED["island"]["Chinstrap"])),
    ("docs/explanations.md", r"/explain answers (\d+(?:,\d{3})*) requests/s", count(OURS["explain_c64"]["rps"])),
    ("docs/explanations.md", r"(\d\.\d\d) of /predict's", f"{SUMMARY['explain_ratio']:.2f}"),
    ("docs/PERFORMANCE.md", r"cold start ([\d.]+) s", f"{OURS['cold_start_s']:.2f}"),
    ("docs/PERFORMANCE.md", r"measured on (\d{4}-\d\d-\d\d)", BENCH["measured_on"]),
    ("docs/OPERATIONS.md", r"highest throughput was (\d+(?:,\d{3})*) requests/s", count(STEP["best"]["rps"])),
    ("docs/OPERATIONS.md", r"requests/s at (\d+) users", str(STEP["best"]["users"])),
    ("docs/OPERATIONS.md", r"soak of (\d{4}-\d\d-\d\d)", SOAK["measured_on"]),
    ("docs/OPERATIONS.md", r"sent (\d+(?:,\d{3})*) requests \(", count(SOAK["requests"])),
    ("docs/OPERATIONS.md", r"\((\d+(?:,\d{3})*) per second, \d+ users\)", count(SOAK["requests_per_s"])),
    ("docs/OPERATIONS.md", r"per second, (\d+) users\)", str(SOAK["users"])),
    ("docs/OPERATIONS.md", r"--minutes (\d+) --users \d+ --out docs/soak`", f"{SOAK['minutes']:g}"),
    ("docs/OPERATIONS.md", r"went from (\d+) MB\s+at the start", str(SOAK["memory_mb_every_10_s"][0])),
    ("docs/OPERATIONS.md", r"at most (\d+) MB while", str(max(SOAK["memory_mb_every_10_s"]))),
    ("docs/OPERATIONS.md", r"and was (\d+) MB at the end", str(SOAK["memory_mb_every_10_s"][-1])),
    ("docs/OPERATIONS.md", r"a worker holds about (\d+) MB", f"{OURS['memory']['rss_mb_at_rest']:.0f}"),
    ("docs/image.md", r"(\d+) MB in all: the base", megabytes(IMAGE["image_bytes"])),
    ("docs/image.md", r"the base (\d+) MB, the runtime", megabytes(IMAGE["base_bytes"])),
    ("docs/image.md", r"the runtime packages (\d+) MB", megabytes(IMAGE["packages_bytes"])),
    ("docs/image.md", r"\(SciPy (\d+) MB", megabytes(IMAGE["largest_packages_bytes"]["scipy"])),
    ("docs/image.md", r"NumPy (\d+) MB the largest", megabytes(IMAGE["largest_packages_bytes"]["numpy"])),
    ("docs/image.md", r"uv (\d+) MB \(BentoML", megabytes(IMAGE["uv_bytes"])),
    ("docs/image.md", r"the bento ([\d.]+) MB", megabytes(IMAGE["bento_bytes"], 1)),
    ("docs/image.md", r"and ([\d.]+) MB of directories and metadata", megabytes(IMAGE["rest_bytes"], 2)),
    ("docs/bulk-scoring.md", r"image \((\d+) MB\) is already", megabytes(IMAGE["image_bytes"])),
    (
        "docs/PERFORMANCE.md",
        r"the floor answers (\d\.\d\d) of the ceiling's",
        f"{RESULTS['bentoml-floor']['c64']['rps'] / RESULTS['http-ceiling']['c64']['rps']:.2f}",
    ),
    (
        "docs/PERFORMANCE.md",
        r"own floor answers (\d\.\d\d) of the",
        f"{RESULTS['bentoml-floor']['c64']['rps'] / RESULTS['http-ceiling']['c64']['rps']:.2f}",
    ),
    ("docs/PERFORMANCE.md", r"this service answers (\d\.\d\d) of the floor's", f"{SUMMARY['bentoml_floor_ratio']:.2f}"),
    ("docs/PERFORMANCE.md", r"p99 is (\d\.\d) times the p50", f"{SUMMARY['p99_over_p50_c64']:.1f}"),
    ("docs/PERFORMANCE.md", r"the lane answers\s+(\d+\.\d\d) times BentoML's path's", f"{SUMMARY['bentoml_api_ratio']:.2f}"),
    ("docs/PERFORMANCE.md", r"(\d+\.\d\d) times its rows/s for 1,000-row", f"{SUMMARY['bentoml_api_batch_ratio']:.2f}"),
    ("docs/PERFORMANCE.md", r"(\d+\.\d\d) times as records", f"{SUMMARY['bentoml_api_records_ratio']:.2f}"),
    ("docs/PERFORMANCE.md", r"longest full collection (\d+) ms", f"{OURS['memory']['full_gc_max_ms']:.0f}"),
    ("docs/PERFORMANCE.md", r"reaches (\d\.\d\d) of the floor per CPU-second", f"{SUMMARY['batch_floor_ratio']:.2f}"),
    (
        "docs/OPERATIONS.md",
        r"this service at (\d+(?:,\d{3})*) requests per server CPU-second",
        count(OURS["c64"]["rps_per_cpu_s"]),
    ),
    ("docs/OPERATIONS.md", r"so about (\d+(?:,\d{3})*) requests/s an instance", count(OURS["c64"]["rps_per_cpu_s"])),
    ("docs/OPERATIONS.md", r"and about (\d+(?:,\d{3})*) for ten", count(10 * round(OURS["c64"]["rps_per_cpu_s"]))),
    (
        "docs/PERFORMANCE.md",
        r"RunnerTrafficMetricsMiddleware` alone (\d+) %",
        f"{100 * PROFILE['shares']['BentoML RunnerTrafficMetricsMiddleware']:.0f}",
    ),
    # Figures the code sets: quoted from its constants.
    *[
        (page, r"gcloud CLI\]?(?:\([^)]*\))? (\d+) or newer", str(GCLOUD_MIN_VERSION))
        for page in ("README.md", "docs/cloud-run.md")
    ],
    *[(page, r"runs as uid (\d+)", str(SERVICE_UID)) for page in ("docs/image.md", "docs/OPERATIONS.md")],
    ("docs/image.md", r"holds the bento under (\d+) MB", megabytes(MAX_BENTO_BYTES)),
    ("docs/image.md", r"that rest under ([\d.]+) MB", megabytes(MAX_REST_BYTES, 3)),
    ("README.md", r"all (\d+) birds of the table", str(len(load_dataset().penguins))),
    ("docs/api.md", r"compares all (\d+) birds with", str(len(load_dataset().penguins))),
    *[
        (page, pattern, count(MAX_BATCH_RECORDS))
        for page, pattern in [
            ("docs/api.md", r"1 to (\d+(?:,\d{3})*) penguins"),
            ("docs/api.md", r"batch empty or over (\d+(?:,\d{3})*)"),
            ("docs/api.md", r"a full (\d+(?:,\d{3})*)-record batch"),
            ("docs/configuration.md", r"a full (\d+(?:,\d{3})*)-record batch"),
            ("docs/bulk-scoring.md", r"stops at (\d+(?:,\d{3})*) rows a request"),
            ("docs/bulk-scoring.md", r"in chunks of (\d+(?:,\d{3})*) rows"),
            ("docs/OPERATIONS.md", r"takes (\d+(?:,\d{3})*) records per request"),
            ("docs/OPERATIONS.md", r"the batch limit \((\d+(?:,\d{3})*) records\)"),
            ("docs/explanations.md", r"a full (\d+(?:,\d{3})*)-row batch of explanations"),
            ("docs/PERFORMANCE.md", r"validates each (\d+(?:,\d{3})*)-row chunk"),
        ]
    ],
    (
        "docs/PERFORMANCE.md",
        r"`PENGUIN_GC_YOUNG_ALLOCATIONS` \((\d+(?:,\d{3})*) by default",
        count(Settings().gc_young_allocations),
    ),
    ("docs/training.md", r"`--coverage`, (\d+) % by default", f"{100 * COVERAGE:.0f}"),
    ("README.md", r"cannot be ruled out at (\d+) % coverage", f"{100 * COVERAGE:.0f}"),
    ("README.md", r"benchmarks; about (\d+) seconds\)", str(TIMINGS["test-fast"]["seconds"])),
    ("README.md", r"runs everything \(about ([\d.]+) minutes\)", f"{TIMINGS['test']['seconds'] / 60:.1f}"),
    ("docs/testing.md", r"`make timings` measured\s+([\d.]+) minutes", f"{TIMINGS['test']['seconds'] / 60:.1f}"),
]


@pytest.mark.parametrize(("document", "pattern", "figure"), CLAIMS, ids=[f"{d}:{p[:40]}" for d, p, _ in CLAIMS])
def test_quoted_figure_agrees_with_its_source(document, pattern, figure):
    found = re.findall(pattern, " ".join((REPO_ROOT / document).read_text().split()))  # line breaks are spaces
    assert found, f"{document} no longer quotes /{pattern}/"
    assert set(found) == {figure}, f"{document}: /{pattern}/ says {found}, the source says {figure}"


def test_performance_page_quotes_the_bench_printout_and_the_profile_whole():
    page = (DOCS / "PERFORMANCE.md").read_text()
    assert f"```\n{report(BENCH)}\n```" in page
    assert targets_table(SUMMARY) in page  # written by make bench, met or missed
    assert profile.table(PROFILE) in page


def test_load_test_report_is_what_its_committed_csvs_give(tmp_path):
    run_dir = tmp_path / "load_test"
    shutil.copytree(LOAD_TEST, run_dir)
    (run_dir / "LOAD_TEST_REPORT.md").unlink()
    assert write_report(run_dir).read_text() == (LOAD_TEST / "LOAD_TEST_REPORT.md").read_text()


def test_soak_figures_are_what_its_committed_csvs_give():
    from scripts.load.soak import figures

    assert figures(DOCS / "soak") == SOAK


def test_committed_run_records_hold_no_machine_paths():
    for path in [LOAD_TEST / "run.json", LOAD_TEST / "LOAD_TEST_REPORT.md", DOCS / "performance.json"]:
        assert not re.search(r"/(work|home|tmp|root)/", path.read_text()), path


def test_readme_training_printout_is_what_training_prints(exported_model):
    """The figures of docs/training.md's training run are the ones train.py prints (fixed seed): everything but the
    last line, which names the new model version and where it was exported."""
    from readme import commands, section

    training = REPO_ROOT / "docs" / "training.md"
    [shown] = [command.output for command in commands(section("Train", training)) if command.text == ".venv/bin/python train.py"]
    printed = (exported_model / "printout.txt").read_text()
    assert shown.splitlines()[:-1] == printed.splitlines()[:-1]
    assert re.fullmatch(r"Saved penguin_classifier:\w+ to the model store; exported to \S+\.", printed.splitlines()[-1])


def test_operations_counts_the_rejection_rules_the_tests_hold():
    from test_validation import REJECTED

    text = " ".join((DOCS / "OPERATIONS.md").read_text().split())
    assert f"tests/test_validation.py`: {len(REJECTED)} rejection rules" in text
