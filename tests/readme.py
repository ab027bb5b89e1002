"""The README's and docs' console and code blocks, read the way the tests run them, and a shell that runs
them as a user types them."""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
TROUBLESHOOTING = REPO_ROOT / "docs" / "troubleshooting.md"


@dataclass(frozen=True)
class Command:
    text: str  # as typed after "$ ", continuation lines included
    output: str  # what the README shows it printing


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
        return subprocess.run(self.script(command), cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=timeout)

    def ok(self, command: str, timeout: float = 600) -> str:
        """Runs a command that must succeed; its standard output and error together."""
        result = self.run(command, timeout)
        assert result.returncode == 0, f"$ {command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result.stdout + result.stderr

    def popen(self, command: str) -> subprocess.Popen:
        """A command whose output is read while it runs (stderr joined to stdout)."""
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
