"""docs/mutation-report.md from the last `mutmut run` (make mutate): each module's mutants by outcome, and every
mutant that no test killed with its change and the reason it stands (EQUIVALENT below), or "unexplained"; and
any reason that no survivor needs any more (its code changed, or a test now kills the mutant), to be removed.

mutmut runs against each mutant only the tests that called its function in their own process. Code that runs
once per process, at import or while the service starts, is called before the first test and so given to that
test alone (where the selection in pyproject.toml leads: tests/test_api_spec.py, which compares the whole served
spec); code that a test runs in a subprocess is given to no test. So a survivor of start-up code, and any
survivor no reason explains, is run again here against every test of the files that call its module, with the
mutant switched on as mutmut does (MUTANT_UNDER_TEST): a failing run kills it.

    MUTATE_STARTED=<epoch seconds> .venv/bin/python -m scripts.dev.mutation_report [--no-recheck] > docs/mutation-report.md
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from functools import cache
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MUTANTS = ROOT / "mutants"
MUTMUT = Path(sys.executable).with_name("mutmut")
KILLED = {"killed", "timeout", "killed by its module's tests"}  # a mutant that hangs a test is caught by it too
QUESTION = "Which small changes to the serving core does no test notice, and why does each stand?"
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
RECHECK_TIMEOUT_S = 300
# Changes that cannot alter what the code does: (function, text of the line before, text of the line after, why).
EQUIVALENT = (
    ("answers.x_csv_header", "CSV_PREFIXES.get(name, name)", "",
     "only `probabilities` is a mapping field, and it has a prefix: the default is for a mapping field added later"),
    ("answers.x__json_list", "if values else", "", 'json.dumps([]) is "[]": the condition only saves a call'),
    ("serving.openapi.x__as_openapi_30", '("maximum", "exclusiveMaximum")', "",
     "no field of the API has an exclusive maximum (every upper bound is inclusive)"),
    ("serving.openapi.x__as_openapi_30", "node.update(next(option", "",
     "pydantic writes `X | None` as [X, null]: the first option that is not the changed one is X either way"),
    ("serving.openapi.x__as_openapi_30", "_as_openapi_30(value)", "_as_openapi_30(None)",
     "the schemas in this API's lists (oneOf of the two batch forms) are $refs, with nothing to convert"),
    ("serving.openapi.x_build_spec", 'route.path.strip("/")', "strip(",
     "strip removes a set of characters: no path starts or ends with an X"),
    ("serving.fast_lane.x_invalid_body", "error.errors(include_url=False", "",
     "the answer takes only each error's loc, msg and type (contract.field_errors): the other keys are never read"),
    ("serving.fast_lane.x_invalid_body", 'entry["loc"][:1] and', "",
     "`loc[:2]` and `loc[:1]` are both empty only when loc is"),
    ("contract.xǁ_CaseInsensitiveǁfold_column", '"column",', "",
     "the error's title is in no answer: answers are built from each error's loc, msg and type"),
    ("contract.xǁ_CaseInsensitiveǁfold_column", '"input": values[index]', "",
     "the rejected value is in no answer (errors are read with include_input=False)"),
    ("contract.x__matrix", ".reshape(-1, len(ISLANDS))", "reshape(-2",
     "numpy reads any negative size as 'the rest'"),
    ("serving.request_log.x__error_fields", 'error.get("error", "")', "",
     "every error answer of the service has an `error`: the default is never used"),
    ("serving.predictor.xǁPredictorǁloaded_model", "if self.model is None and self.loading:", "",
     "`or` only sends a request into the wait loop, whose own condition ends it at once when the model is there"),
    ("serving.predictor.xǁPredictorǁloaded_model", "time.monotonic() < deadline", "<=",
     "the same test one tick later"),
    ("serving.readiness.xǁInstanceReadinessǁready_workers", "entry.unlink(missing_ok=True)", "",
     "two workers removing the same dead worker's entry at the same instant: a race no test can time"),
    ("model.x_field_contributions", "nthread=nthread)", "",
     "the DMatrix's threads only build the matrix: the contributions are the same with XGBoost's default"),
    ("model.xǁPenguinModelǁcontributions", "self.nthread)", "None)",
     "field_contributions passes its threads to the DMatrix only: the contributions are the same with the default"),
    ("model.xǁPenguinModelǁcheck", 'dtype=np.float32)', "",
     "float32 rounding (~1e-7) is far inside the self-check's tolerance of 1e-5"),
    ("model.xǁPenguinModelǁchecked", 'location: str = ""', "",
     "only train.py omits the location, and its model is written to files, never reported"),
    ("storage.x_make_client", 'project="local-emulator"', "",
     "fake-gcs-server ignores the project: any name works, and so does the client's look-up of one"),
    ("storage.x_fetch_model", 'checksum="crc32c", ', "",
     'download_as_bytes checks crc32c by default ("auto") where google-crc32c is installed, as the locks install it'),
    ("storage.x_upload_new", "if_generation_match=blob.generation)", "None)",
     "the precondition spares an object that another writer replaced in the instant between upload and delete: "
     "a race no test can time"),
    ("storage.xǁDeadlineǁcall_options", "if remaining <= 0:", "< 0",
     "the same test one tick later"),
    ("serving.request_log.xǁRequestLogǁ__call__", 'decode("latin-1")', 'decode("LATIN-1")',
     "codec names are case-insensitive"),
    ("serving.request_log.xǁRequestLogǁ_log", 'decode("latin-1")', 'decode("LATIN-1")',
     "codec names are case-insensitive"),
    ("serving.request_log.xǁRequestLogǁ_log", 'body.decode("utf-8", "replace")', 'decode("UTF-8"',
     "codec names are case-insensitive"),
    ("serving.request_log.xǁRequestLogǁ_log", 'b"x-cloud-trace-context", b"")', 'b"XXXX")',
     "a default that is no trace context adds no trace fields either"),
    ("serving.request_log.xǁRequestLogǁ_log", '("", 0))[0]', "",
     "only the address is read: the port of the default is never used"),
    ("serving.request_log.xǁRequestLogǁ__call__", 'if debug and message["type"] == "http.request":', "debug or",
     "the collected body is logged only at DEBUG: collecting it otherwise changes no line"),
    ("serving.fast_lane.xǁApiRoutesǁ_answer", 'message.get("more_body", False)', "",
     "None and False both end the body: ASGI's default is read as falsy either way"),
    ("serving.bentoml_timeout.xǁCancellingTimeoutMiddlewareǁ__call__", '"websocket"', "",
     "the service has no websocket route: such a scope never reaches the middleware"),
    ("serving.bentoml_timeout.xǁCancellingTimeoutMiddlewareǁ__call__", "await resp(scope, receive, send)", "None",
     "the timeout's answer (a starlette Response) never reads the request"),
    ("contract.x_field_errors", '".".join(str(part) for part in location)', "",
     "every field of the contract is flat: past the row index a location has one part, so no separator is written"),
    ("contract.x__matrix", "np.array(measurements, dtype=np.float32).T", "",
     "the assignment casts into the float32 matrix either way, with the same rounding"),
    ("contract.x__answer_columns_of", "__module__=__name__", "",
     "create_model's module defaults to its caller's: this module either way"),
    ("contract.x__columns_of", "__module__=__name__", "",
     "create_model's module defaults to its caller's: this module either way"),
    ("serving.metrics.x__count", "minlength=len(series)", "",
     "only the indexes that occur are read: the padding to every series is never used"),
    ("contract.x__columns_of", "_COLUMN_FORMS.get(hint)", "get(None)",
     "a list of the record's own type validates and documents a column the same: the column's own form is there "
     "for speed (one validator call per column, not per value), which make bench measures"),
    ("contract.xǁ_CaseInsensitiveǁfold", "self.by_folded_name.get(value.casefold(), value)", "",
     "an unknown name fails the choice's check after fold either way, with the same message"),
    ("serving.request_log.x_configure", 'handler.setFormatter(logging.Formatter("%(message)s"))', "",
     "logging's default format is %(message)s too"),
    ("serving.request_log.x_configure", "ACCESS_LOG.propagate = False", "None",
     "None is falsy: the lines do not propagate either way"),
    ("storage.xǁDeadlineǁcall_options", "multiplier=2.0", "",
     "DEFAULT_RETRY's multiplier is 2.0 already: the argument states it"),
    ("serving.endpoints.x_route_of", 'api.doc or ""', 'api.doc or "XXXX"',
     "a method with no docstring is refused either way: a default with no blank line gives no description"),
    ("serving.metrics.xǁModelCallsǁadd", 'name="model-call-metrics"', "daemon=True)",
     "the name is what a thread dump or py-spy shows an operator: nothing in the service reads it"),
    ("serving.get_app.xǁPagesǁversions", 'context.bento_version != "not available"', "",
     "in-process the service runs from source, with no bento: the bento's name is checked on the built image "
     "(test_image.py, outside this selection)"),
)  # fmt: skip


def equivalence(name: str) -> tuple[str, str, str, str] | None:
    """The entry of EQUIVALENT that explains a mutant (by its function, the name up to `__mutmut_`), if any."""
    function = name.split("__mutmut_")[0].removeprefix("penguin_serve.")
    before, after = changed_lines(name)
    return next((entry for entry in EQUIVALENT if entry[0] == function and entry[1] in before and entry[2] in after), None)


def reason(name: str) -> str | None:
    return entry[3] if (entry := equivalence(name)) else None


@cache
def changed_lines(name: str) -> tuple[str, str]:
    shown = subprocess.run([MUTMUT, "show", name], capture_output=True, text=True, check=True).stdout.splitlines()
    removed = " ".join(line[1:].strip() for line in shown if line.startswith("-") and not line.startswith("---"))
    added = " ".join(line[1:].strip() for line in shown if line.startswith("+") and not line.startswith("+++"))
    return removed, added


def outcomes() -> dict[str, str]:
    listed = subprocess.run([MUTMUT, "results", "--all", "true"], capture_output=True, text=True, check=True).stdout
    return dict(line.strip().rsplit(": ", 1) for line in listed.splitlines() if ": " in line)


@cache
def stats() -> dict:
    return json.loads((MUTANTS / "mutmut-stats.json").read_text())


def tests_by_function() -> dict[str, list[str]]:
    return stats()["tests_by_mangled_function_name"]


@cache
def first_test() -> str:
    """The test mutmut's stats run ran first (its durations are in running order): it is given the start-up code."""
    return next(iter(stats()["duration_by_test"]))


@cache
def module_tests(module_name: str) -> tuple[str, ...]:
    """The in-process tests of every file with a test that called a function of the module, the first test's
    file first (a test that runs the code in a subprocess calls nothing that mutmut sees)."""
    files = {
        test.split("::")[0]
        for function, tests in tests_by_function().items()
        if module(function) == module_name
        for test in tests
    }
    first_file = first_test().split("::")[0]
    selection = CONFIG["pytest_add_cli_args_test_selection"]
    return ("-m", selection[selection.index("-m") + 1], first_file, *sorted(files - {first_file}))


def killed_by_the_module_tests(name: str) -> bool:
    command = [sys.executable, "-m", "pytest", *CONFIG["pytest_add_cli_args"], *module_tests(module(name))]
    env = {**os.environ, "MUTANT_UNDER_TEST": name}
    try:
        return subprocess.run(command, cwd=MUTANTS, env=env, capture_output=True, timeout=RECHECK_TIMEOUT_S).returncode != 0
    except subprocess.TimeoutExpired:
        return True


def rechecked(results: dict[str, str]) -> dict[str, str]:
    """The results, with survivors of start-up code and survivors no reason explains run against every test of
    the files that call their module."""
    start_up = {function for function, tests in tests_by_function().items() if first_test() in tests}
    again = [
        name
        for name, outcome in results.items()
        if outcome == "survived" and (name.split("__mutmut_")[0] in start_up or not reason(name))
    ]
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        killed = dict(zip(again, pool.map(killed_by_the_module_tests, again)))
    return {name: "killed by its module's tests" if killed.get(name) else outcome for name, outcome in results.items()}


def code(text: str) -> str:
    """A table cell of code; an empty text in EQUIVALENT matches any line."""
    return f"`{text}`".replace("|", "\\|") if text else "(any)"


def change(name: str) -> str:
    before, after = changed_lines(name)
    return f"`{before}` → `{after}`".replace("|", "\\|")


def module(name: str) -> str:
    return name.split(".x")[0]


def minutes_since_start() -> float:
    return (time.time() - int(os.environ.get("MUTATE_STARTED", time.time()))) / 60


def report(results: dict[str, str]) -> str:
    by_module: dict[str, Counter] = defaultdict(Counter)
    for name, outcome in results.items():
        by_module[module(name)][outcome] += 1
    kinds = sorted({outcome for counts in by_module.values() for outcome in counts})
    survivors = sorted(name for name, outcome in results.items() if outcome not in KILLED)
    with ThreadPoolExecutor(os.cpu_count()) as pool:  # one `mutmut show` each, a second apiece
        list(pool.map(changed_lines, survivors))
    unexplained = [name for name in survivors if not reason(name)]
    used = {equivalence(name) for name in survivors}
    unneeded = [entry for entry in EQUIVALENT if entry not in used]
    lines = [
        "# Mutation testing report",
        "",
        f"*{QUESTION}*",
        "",
        f"Generated by `make mutate` on {date.today().isoformat()} (mutmut {version('mutmut')}, "
        f"{minutes_since_start():.0f} minutes on {os.cpu_count()} cores, the rechecks included); "
        "do not edit: scripts/dev/mutation_report.py writes it."
        + (" Survivors were not rerun against their modules' tests (--no-recheck)." if "--no-recheck" in sys.argv else ""),
        "",
        f"{len(results)} mutants of the serving core, {sum(1 for o in results.values() if o in KILLED)} killed "
        "(a timeout, mutmut's word for a run past its time limit or one that broke before its tests ran, as a "
        "mutant that breaks an import does, counts as killed; *killed by its module's tests*: a survivor of code that "
        "runs before the first test, or one no reason explains, killed when rerun against every test of the files "
        f"that call its module), {len(survivors) - len(unexplained)} with a reason, {len(unexplained)} unexplained.",
        "",
        "| module | " + " | ".join(kinds) + " |",
        "|---|" + "---:|" * len(kinds),
        *[f"| `{name}` | " + " | ".join(str(counts[k]) for k in kinds) + " |" for name, counts in sorted(by_module.items())],
        "",
        "## Mutants no test kills",
        "",
        "| mutant | change | why it stands |",
        "|---|---|---|",
        *[f"| `{name}` | {change(name)} | {reason(name) or '**unexplained**'} |" for name in survivors],
    ]
    if unneeded:  # a reason for code that changed or a mutant a test now kills: remove it from EQUIVALENT
        lines += ["", "## Reasons no survivor needs", "", "| function | line before | line after |", "|---|---|---|"]
        lines += [f"| `{function}` | {code(old)} | {code(new)} |" for function, old, new, _ in unneeded]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    results = outcomes()  # --no-recheck: mutmut's outcomes as they are (the recheck takes minutes a survivor)
    sys.stdout.write(report(results if "--no-recheck" in sys.argv else rechecked(results)))
