"""The README and docs/ as a newcomer meets them: a short README, one document per topic that opens with the
question it answers and is listed with it, links that resolve, and every console command run by a test as
typed (or named in tests/readme.py with the reason it is not)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from readme import NOT_AS_TYPED, PAGES, README, RUNNERS, console_commands

DOCS = PAGES[1:]


def opening_question(page: Path) -> str:
    """The first paragraph after the title, as one line without emphasis."""
    paragraph = page.read_text().split("\n\n")[1]
    return " ".join(paragraph.split()).strip("*")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_readme_reads_in_five_minutes():
    assert len(README.read_text().splitlines()) <= 200


@pytest.mark.parametrize("page", DOCS, ids=lambda page: page.name)
def test_each_document_opens_with_its_question_and_the_readme_lists_it(page):
    question = opening_question(page)
    assert question.endswith("?"), f"{page.name} opens with {question!r}, not a question"
    assert f"| [{page.name}](docs/{page.name}) | {question} |" in README.read_text()


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_resolves(page):
    broken = []
    for target, anchor in re.findall(r"\]\((?!https?:|mailto:)([^)#\s]*)(?:#([^)\s]+))?\)", page.read_text()):
        linked = (page.parent / target).resolve() if target else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.MULTILINE)
            if anchor not in {slug(heading) for heading in headings}:
                broken.append(f"{target}#{anchor}")
    assert broken == []


def test_every_command_runs_in_a_test_as_typed():
    """A command is run where its section has a runner, or where the same line is run from another page."""
    listed = console_commands()
    run = {command for page, section, command in listed if (page, section) in RUNNERS}
    unaccounted = []
    for page, section, command in listed:
        if command in NOT_AS_TYPED or command in run and (page, section) not in RUNNERS:
            continue
        runners = RUNNERS.get((page, section))
        if not runners:
            unaccounted.append(f"{page} / {section}: {command}")
            continue
        for runner in runners:
            source = (REPO_ROOT / runner).read_text()
            named = runner in ("scripts/dev/test-fresh.sh", ".ci/run") or (
                (page == "README.md" or page.removesuffix(".md") in source) and (section is None or section in source)
            )
            assert named, f"{runner} does not read {page} / {section}"
    assert unaccounted == []


def test_the_reasons_name_commands_the_docs_still_show():
    shown = {command for _, _, command in console_commands()}
    assert set(NOT_AS_TYPED) <= shown


def test_the_ci_workflow_is_valid_and_runs_targets_the_makefile_has():
    import yaml
    from readme import blocks, section

    [workflow] = blocks(section("Deploy from CI", REPO_ROOT / "docs" / "cloud-run.md"), "yaml")
    parsed = yaml.safe_load(workflow)
    assert parsed["permissions"]["id-token"] == "write"  # Workload Identity Federation, no key file
    runs = [step["run"] for step in parsed["jobs"]["deploy"]["steps"] if "run" in step]
    targets = set(re.findall(r"^([\w-]+):", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE))
    made = [run.split()[1] for run in runs if run.startswith("make ")]
    assert made[-1] == "deploy" and set(made) <= targets


def test_a_documented_command_that_no_test_ran_fails_the_run(tmp_path):
    """conftest.py's end-of-run check: of the sections whose runners ran, each command not recorded is named."""
    from readme import commands_not_run

    ledger = tmp_path / "ledger"
    ledger.write_text('"make run"\n')
    missing = commands_not_run(ledger, {"tests/test_readme.py"})
    assert "make run" not in missing and ".venv/bin/python train.py" in missing
    assert not any("gcloud" in command for command in missing)  # the journey's commands: it did not run


def test_the_apis_field_tables_are_the_contracts():
    from scripts.dev import api_fields

    page = api_fields.PAGE.read_text()
    assert api_fields.TABLE.findall(page) and api_fields.rewrite(page) == page, "run: .venv/bin/python -m scripts.dev.api_fields"
