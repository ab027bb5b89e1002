"""docs/configuration.md is what scripts/dev/configuration.py writes from the settings' declarations, and it lists
every environment variable that any entry point reads (Python, the shell scripts, the Makefile)."""

import re

from conftest import REPO_ROOT

from scripts.dev.configuration import markdown

PAGE = REPO_ROOT / "docs" / "configuration.md"
READS = (
    r"environ\.get\(\"([A-Z_]+)\"",
    r"environ\[\"([A-Z_]+)\"\]",
    r"env\.get\(\"([A-Z_]+)\"",
    r"env_var=\"([A-Z_]+)\"",
    r"setting\(\s*\"([A-Z_]+)\"",
    r"\$\{([A-Z_]+)[:}]",
    r"^([A-Z_]+) \?=",
)
# Set by the system, by BentoML for its workers, by gcloud's judge for each line, or for the tests (their
# documented-command ledger, make mutate's model cache, their Cloud Run stand-in): not a user's.
NOT_SETTINGS = {"PATH", "HOME", "PROMETHEUS_MULTIPROC_DIR", "CLOUDSDK_CONFIG", "PENGUIN_DOCS_LEDGER", "PENGUIN_TEST_MODEL_CACHE"}
STAND_IN_PREFIX = "GCLOUD_STAND_IN_"


def read_variables() -> dict[str, set[str]]:
    files = [
        path
        for pattern in ("**/*.py", "scripts/*.sh", "Makefile", ".ci/run")
        for path in REPO_ROOT.glob(pattern)
        if not any(part.startswith(".venv") or part == "mutants" for part in path.relative_to(REPO_ROOT).parts)
    ]
    found: dict[str, set[str]] = {}
    for path in files:
        text = path.read_text()
        for pattern in READS:
            for name in re.findall(pattern, text, re.MULTILINE):
                found.setdefault(name, set()).add(str(path.relative_to(REPO_ROOT)))
    return found


def test_the_reference_is_what_the_declarations_give():
    assert PAGE.read_text() == markdown(), "run: .venv/bin/python -m scripts.dev.configuration > docs/configuration.md"


def test_every_variable_an_entry_point_reads_is_in_the_reference():
    listed = set(re.findall(r"^\| `([A-Z_]+)` \|", PAGE.read_text(), re.MULTILINE))
    found = read_variables()
    assert len(found) > 50  # the scan finds the reads at all
    missing = {
        name: sorted(where)
        for name, where in found.items()
        if name not in listed | NOT_SETTINGS and not name.startswith(STAND_IN_PREFIX)
    }
    assert missing == {}


def test_a_setting_of_any_spelling_of_an_optional_type_parses_as_its_type():
    import dataclasses
    from typing import Optional

    from penguin_serve.configuration import from_env, setting

    name_variable, count_variable, hosts_variable = "A_NAME", "A_COUNT", "HOSTS"  # this test's, not the reference's

    @dataclasses.dataclass(frozen=True)
    class Declared:
        name: Optional[str] = setting(name_variable, "a name")  # noqa: UP045 - the spelling under test
        count: int | None = setting(count_variable, "a count")
        hosts: tuple[str, ...] = setting(hosts_variable, "hosts", ())

    given = {name_variable: "x", count_variable: "3", hosts_variable: "a, b"}
    assert from_env(Declared, given) == Declared("x", 3, ("a", "b"))
    assert from_env(Declared, {}) == Declared(None, None, ())
