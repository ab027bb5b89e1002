"""The README and docs/ as a newcomer meets them: a short README, one document per topic that opens with the
question it answers and is listed with it, links that resolve, and every console command run by a test as
typed (or named below with the reason it is not)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]

# Where each console block's commands run as typed: (page, its `## ` section, or None before any) -> the files
# that read that section and run it. A runner must name the page and the section it reads.
RUNNERS = {
    ("README.md", "Set up: two commands"): ["scripts/test-fresh.sh", "tests/test_readme.py", ".ci/run"],
    ("README.md", "Call it"): ["tests/test_readme.py"],
    ("README.md", "Deploy to Cloud Run"): ["tests/test_cloud_run_journey.py"],
    ("README.md", "Load test the URL"): ["tests/test_cloud_run_journey.py"],
    ("api.md", "Try it"): ["tests/test_readme.py"],
    ("explanations.md", None): ["tests/test_readme.py"],
    ("training.md", "Train"): ["tests/test_readme.py"],
    ("training.md", "The model in Google Cloud Storage"): ["tests/test_readme.py"],
    ("image.md", None): ["tests/test_image.py"],
    ("cloud-run.md", "Set up a project (once)"): ["tests/test_cloud_run_journey.py"],
    ("cloud-run.md", "Deploy"): ["tests/test_cloud_run_journey.py"],
    ("cloud-run.md", "Roll out in steps, roll back"): ["tests/test_cloud_run_journey.py"],
    ("cloud-run.md", "Clean up"): ["tests/test_cloud_run_journey.py"],
    ("bulk-scoring.md", None): ["tests/test_cloud_run_journey.py"],
    ("monitoring.md", "Install the alerts and the dashboard"): ["tests/test_gcloud_commands.py"],
}
# Commands no test runs exactly as printed, and why; each is run in the shortened form named.
NOT_AS_TYPED = {
    "locust -f locustfile.py --headless -u 10 -r 5 -t 30s --csv results --only-summary":
        "30 s of load: tests/test_loadtest.py runs this line with -t 6s",
    "make loadtest": "all five scenarios at full length (about 15 minutes): tests/test_loadtest.py runs two, shortened",
    'make loadtest LOADTEST_ARGS="--target server --time-scale 0.1"':
        "tests/test_loadtest.py runs scripts/loadtest.py with --target server and two scenarios",
    "make bench": "about 15 minutes: tests/test_bench.py runs benchmarks.bench with short durations",
    "make profile": "tests/test_bench.py runs benchmarks.profile with a short duration",
    ".venv/bin/python benchmarks/plot.py docs/performance.json docs/performance.png":
        "rewrites a committed picture: tests/test_bench.py draws it into a temporary folder",
    ".venv/bin/python -m benchmarks.bench --duration 3 --reps 1": "tests/test_bench.py runs it shorter still",
    "make test": "what CI (.ci/run) runs; a test cannot run the suite that contains it",
    ".venv/bin/python -m scripts.soak --target container --minutes 10 --users 10 --out docs/soak":
        "ten minutes, and rewrites committed figures: tests/test_loadtest.py runs a short soak into a temporary folder",
    "scripts/audit.sh": "needs PyPI's JSON API or OSV, which the test machines cannot reach",
}  # fmt: skip


def opening_question(page: Path) -> str:
    """The first paragraph after the title, as one line without emphasis."""
    paragraph = page.read_text().split("\n\n")[1]
    return " ".join(paragraph.split()).strip("*")


def console_commands() -> list[tuple[str, str | None, str]]:
    """(page name, its section, the command as typed) for every `$ ` line of every console block."""
    found = []
    for page in PAGES:
        section, in_block = None, False
        for line in page.read_text().splitlines():
            if line.startswith("```"):
                in_block = line == "```console"
            elif not in_block and line.startswith("## "):
                section = line[3:]
            elif in_block and line.startswith("$ "):
                found.append((page.name, section, re.sub(r"\s+#.*$", "", line[2:]).strip()))
    return found


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
            named = runner in ("scripts/test-fresh.sh", ".ci/run") or (
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
