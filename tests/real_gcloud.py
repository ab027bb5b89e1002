"""The real Google Cloud CLI as the judge of a command line: does gcloud itself accept these arguments?

Each line runs with an empty configuration (no account, no project), prompts, usage reporting, update checks
and GCE metadata checks off, inside a network namespace with no network at all (`unshare --net`), so nothing
can leave the machine. A line that gcloud accepts gets past its argument parsing and stops where it first
needs credentials, saying so (PARSED), or, needing none, succeeds; anything else (exit 2 "unrecognized arguments", "argument --x: ...",
"You must specify a region", a file it cannot read) is a refusal, with gcloud's own message.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from conftest import REPO_ROOT

STAND_IN = REPO_ROOT / "tests" / "stand_in"
FORKS = REPO_ROOT / "tests" / "gcloud_forks.py"
# Where a parsed line stops: at the missing account, or at the sign-in prompt of `auth login` (no terminal here).
PARSED = ("You do not currently have an active account selected", "enter the verification code provided in your browser")
# The one skip that the CI rule on skips allows: these machines on Debian 13 have no gcloud, and no registry
# reachable from them carries it.
MISSING = "the real gcloud CLI is not installed here, so no command line is judged by it"


def real_gcloud() -> str | None:
    """The gcloud on PATH that is not this project's stand-in."""
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p).resolve() != STAND_IN)
    return shutil.which("gcloud", path=path)


def unavailable_reason() -> str | None:
    if real_gcloud() is None:
        return MISSING
    isolated = subprocess.run(["unshare", "--net", "--", "true"], capture_output=True, text=True)
    if isolated.returncode != 0:  # not a reason to skip: the judge must run where gcloud is
        raise RuntimeError(f"`unshare --net` fails here, so gcloud cannot run without a network: {isolated.stderr}")
    return None


@dataclass(frozen=True)
class Verdict:
    line: tuple[str, ...]  # the arguments after `gcloud`
    returncode: int
    message: str  # what gcloud printed

    @property
    def parsed(self) -> bool:
        """Exit 0 is a line that needed no credentials (`--help`, `auth configure-docker`, which writes the
        empty configuration's Docker settings); exit 1 must be the stop for credentials or a sign-in."""
        return self.returncode == 0 or self.returncode == 1 and any(stop in self.message for stop in PARSED)

    def __str__(self) -> str:
        return f"gcloud {' '.join(self.line)}\n  -> exit {self.returncode}: {self.message.strip()}"


def _environment(home: str, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": home,
        "CLOUDSDK_CONFIG": f"{home}/config",
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
        "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
        **extra,
    }


def judge_one(line: Sequence[str], cwd: Path = REPO_ROOT) -> Verdict:
    """One line, as typed: gcloud's launcher and a process of its own."""
    with tempfile.TemporaryDirectory(prefix="gcloud-judge-") as home:
        result = subprocess.run(
            ["unshare", "--net", "--", real_gcloud(), *line],
            cwd=cwd, env=_environment(home), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    return Verdict(tuple(line), result.returncode, result.stderr + result.stdout)


def judge(lines: Iterable[Sequence[str]], cwd: Path = REPO_ROOT) -> list[Verdict]:
    """Each distinct line's verdict, in the order first given. gcloud spends about a second of CPU importing
    itself for every line, so the lines run in processes forked after one import (tests/gcloud_forks.py),
    each as judge_one would run it."""
    distinct = [list(line) for line in dict.fromkeys(tuple(line) for line in lines)]
    with tempfile.TemporaryDirectory(prefix="gcloud-judge-") as home:
        forks = shutil.copy(FORKS, home)  # the launcher splits CLOUDSDK_PYTHON_ARGS on spaces
        (Path(home) / "lines.json").write_text(json.dumps(distinct))
        result = subprocess.run(
            ["unshare", "--net", "--", real_gcloud(), f"{home}/lines.json", f"{home}/verdicts.json"],
            cwd=cwd, env=_environment(home, CLOUDSDK_PYTHON_ARGS=f"-S {forks}"), capture_output=True, text=True,
            timeout=600, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert result.returncode == 0, f"the forking judge failed: {result.stderr}"
        verdicts = json.loads((Path(home) / "verdicts.json").read_text())
    return [Verdict(tuple(line), status, stderr + stdout) for line, (status, stderr, stdout) in zip(distinct, verdicts)]
