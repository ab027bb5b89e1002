"""The external programs that tests, benchmarks and scripts run, each found or installed through `require`.

Every program comes from a Debian package. Where it is missing and this user is root (CI, a fresh machine
without a package manager of its own), `require` installs that package with apt-get, once, under a lock so
that concurrent callers do not collide on dpkg; elsewhere it raises ToolMissing with the command to run.
Callers use the path it returns, never a program an earlier caller happened to install.

    python3 -m scripts.dev.tools PROGRAM...   prints each program's path (for shell scripts); exit 1 when missing
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# program -> the Debian package that provides it
PACKAGES = {
    "dockerd": "docker.io",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "wrk": "wrk",
    "debootstrap": "debootstrap",
    "docker-registry": "docker-registry",
    "curl": "curl",
}
# Where Debian installs the programs: root's PATH has them, an unprivileged user's may not.
SYSTEM_PATH = os.pathsep.join(("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"))
_LOCK = Path(tempfile.gettempdir()) / "penguin-serve-apt.lock"


class ToolMissing(RuntimeError):
    """The program is not installed and this user cannot install it."""


def find(program: str) -> str | None:
    return shutil.which(program) or shutil.which(program, path=SYSTEM_PATH)


def require(program: str) -> str:
    """The absolute path of `program`, installing its Debian package first where it is missing."""
    package = PACKAGES[program]
    path = find(program)
    if path:
        return path
    if os.geteuid() != 0:
        raise ToolMissing(f"{program} is needed and this user cannot install it: sudo apt-get install {package}")
    with open(_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be installing the same package right now
        if not find(program):
            _apt_get(package)
    path = find(program)
    if path is None:
        raise ToolMissing(f"apt-get installed {package}, but {program} is still not on PATH")
    return path


def _apt_get(package: str) -> None:
    print(f"installing Debian's {package}", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "PATH": SYSTEM_PATH}
    subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True, env=env)
    installed = subprocess.run(["apt-get", "install", "-y", "-qq", package], capture_output=True, text=True, env=env)
    if installed.returncode != 0:
        raise ToolMissing(f"apt-get install {package} failed:\n{installed.stdout[-2000:]}{installed.stderr[-2000:]}")


def main(argv: list[str]) -> int:
    try:
        for program in argv:
            print(require(program))
    except ToolMissing as missing:
        print(missing, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
