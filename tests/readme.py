"""The README's and docs' console and code blocks, read the way the tests run them, and a shell that runs
them as a user types them."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
PAGES = [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]
# The tests that run a documented command record it here (PENGUIN_DOCS_LEDGER, one line each); at the end of a
# whole run, conftest.py fails the run if a command of a section whose runners ran is not recorded.
LEDGER = "PENGUIN_DOCS_LEDGER"
TROUBLESHOOTING = REPO_ROOT / "docs" / "troubleshooting.md"


@dataclass(frozen=True)
class Command:
    text: str  # as typed after "$ ", continuation lines included
    output: str  # what the README shows it printing


# Where each console block's commands run as typed: (page, its `## ` section, or None before any) -> the files
# that read that section and run it. A runner must name the page and the section it reads.
RUNNERS = {
    ("README.md", "Set up: two commands"): ["scripts/dev/test-fresh.sh", "tests/test_readme.py", ".ci/run"],
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
        "tests/test_loadtest.py runs scripts/load/loadtest.py with --target server and two scenarios",
    "make bench": "about 15 minutes: tests/test_bench.py runs benchmarks.bench with short durations",
    "make profile": "tests/test_bench.py runs benchmarks.profile with a short duration",
    ".venv/bin/python benchmarks/plot.py docs/performance.json docs/performance.png":
        "rewrites a committed picture: tests/test_bench.py draws it into a temporary folder",
    ".venv/bin/python -m benchmarks.bench --duration 3 --reps 1": "tests/test_bench.py runs it shorter still",
    "make test": "what CI (.ci/run) runs; a test cannot run the suite that contains it",
    "sudo apt-get install python3 python3-venv make git":
        "needs a fresh machine: scripts/dev/test-fresh.sh (make test-fresh) runs it in a fresh container as root",
    ".venv/bin/python -m scripts.load.soak --target container --minutes 10 --users 10 --out docs/soak":
        "ten minutes, and rewrites committed figures: tests/test_loadtest.py runs a short soak into a temporary folder",
    "scripts/dev/audit.sh": "needs PyPI's JSON API or OSV, which the test machines cannot reach",
    ".venv/bin/python -m scripts.deploy.cloudrun canary $IMAGE --steps 10,50,100 --step-wait-s 300":
        "five minutes a step: tests/test_cloud_run_journey.py runs this line with --step-wait-s 20",
}  # fmt: skip


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
                found.append((page.name, section, first_line(line[2:])))
    return found


def ran(command: str) -> None:
    """Records that a test runs this documented command (as typed, or with a documented value put in)."""
    if ledger := os.environ.get(LEDGER):
        with open(ledger, "a") as file:
            file.write(json.dumps(command) + "\n")


def first_line(command: str) -> str:
    """A command as console_commands() lists it: its first line, without a trailing comment."""
    return re.sub(r"\s+#.*$", "", command.splitlines()[0]).strip()


def commands_not_run(ledger: Path, test_files: set[str]) -> list[str]:
    """The documented commands that no test recorded as run, of those whose runners (over every section that
    shows the command) all ran."""
    lines = ledger.read_text().splitlines() if ledger.exists() else []
    recorded = {first_line(json.loads(line)) for line in lines}
    runners: dict[str, set[str]] = {}
    for page, section_title, command in console_commands():
        runners.setdefault(command, set()).update(r for r in RUNNERS.get((page, section_title), []) if r.startswith("tests/"))
    return sorted(
        command
        for command, its_runners in runners.items()
        if command not in NOT_AS_TYPED and command not in recorded and its_runners and its_runners <= test_files
    )


def section(title: str, page: Path = README) -> str:
    """A page's text under `## title`, up to the next second-level heading."""
    text = page.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def commands(text: str) -> list[Command]:
    """Each `$ ` line of the console blocks, with its continuation lines (a trailing backslash or an open
    quote) and the output lines after it."""
    found: list[Command] = []
    for block in blocks(text, "console"):
        lines = block.splitlines()
        index = 0
        while index < len(lines):
            if not lines[index].startswith("$ "):
                index += 1
                continue
            command = [lines[index][2:]]
            while (command[-1].endswith("\\") or "\n".join(command).count("'") % 2) and index + 1 < len(lines):
                index += 1
                command.append(lines[index])
            index += 1
            output = []
            while index < len(lines) and not lines[index].startswith("$ "):
                output.append(lines[index])
                index += 1
            found.append(Command("\n".join(command), "\n".join(output)))
    return found


class Shell:
    """One terminal: each command runs in bash as typed, in the repository (or `cwd`), and the variables it sets (`IMAGE=...`,
    `export ...`) are there for the next command."""

    def __init__(self, env: dict[str, str], variables: Path, cwd: Path = REPO_ROOT) -> None:
        self.env, self.variables, self.cwd = env, variables, cwd
        variables.write_text("")

    def script(self, command: str) -> list[str]:
        saved = shlex.quote(str(self.variables))
        return ["bash", "-c", f"set -a; source {saved}\n{command}\nstatus=$?\nexport -p > {saved}\nexit $status"]

    def run(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess:
        ran(command)
        return subprocess.run(self.script(command), cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=timeout)

    def ok(self, command: str, timeout: float = 600) -> str:
        """Runs a command that must succeed; its standard output and error together."""
        result = self.run(command, timeout)
        assert result.returncode == 0, f"$ {command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result.stdout + result.stderr

    def popen(self, command: str) -> subprocess.Popen:
        """A command whose output is read while it runs (stderr joined to stdout)."""
        ran(command)
        return subprocess.Popen(
            self.script(command), cwd=self.cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def value(self, name: str) -> str:
        return self.ok(f'printf %s "${name}"')


def troubleshooting(number: int) -> re.Pattern:
    """The message docs/troubleshooting.md quotes in its entry `number`, as a pattern (… matches what varies)."""
    quoted = re.search(rf"^## {number}\. .*?```text\n(.*?)\n```", TROUBLESHOOTING.read_text(), re.DOTALL | re.MULTILINE)
    assert quoted, f"no entry {number} with a quoted message in {TROUBLESHOOTING}"
    return re.compile(".*?".join(re.escape(part) for part in quoted.group(1).split("…")))


def documented_gcloud_lines(page: Path, variables: dict[str, str]) -> list[tuple[str, ...]]:
    """Every gcloud line a page shows, with the arguments its shell would pass: the console commands, the YAML
    `run:` steps and the inline `gcloud ...` code, each run by bash where `gcloud` is a function that records
    its arguments and no other program can be found (so nothing else runs). `variables` stand for the values a
    reader's shell holds; the page's own `export` lines set theirs. Inline code that names a command with no
    arguments (`gcloud run deploy`) is recorded as `--help` on it: the command must exist."""
    import tempfile

    text = page.read_text()
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    inline = [code for code in re.findall(r"`(gcloud [^`]+)`", prose.replace("\n", " "))]
    named = [f"{code} --help" if re.fullmatch(r"gcloud( [a-z][\w-]*)+", code) else code for code in inline]
    steps = [step for block in blocks(text, "yaml") for step in re.findall(r"^\s*- run: (.*)$", block, re.MULTILINE)]
    typed = [command.text for command in commands(text)] + steps + named
    exports = [line for line in typed if line.startswith("export ")]
    with tempfile.TemporaryDirectory(prefix="gcloud-lines-") as folder:
        record = shlex.quote(str(Path(folder) / "lines"))
        prelude = [
            f'gcloud() {{ printf "%s\\0" "$@" >> {record}; printf "\\n" >> {record}; }}',
            "command_not_found_handle() { return 0; }",
            *exports,
        ]
        env = {**variables, "PATH": "", "HOME": folder}
        for line in typed:
            script = "\n".join([*prelude, line])
            subprocess.run(["/bin/bash", "-c", script], cwd=folder, env=env, capture_output=True, timeout=60)
        recorded = (Path(folder) / "lines").read_text() if (Path(folder) / "lines").exists() else ""
    return [tuple(line.split("\0")) for line in recorded.split("\0\n") if line]
