"""Whether the whole instance is ready: every one of its workers has loaded and checked its model.

Each worker answers /readyz for itself, but a probe or a client reaches whichever worker accepts its
connection: one ready worker must not report the instance ready while another still loads (at start, or after
BentoML restarted a worker that died). A worker that has loaded its model leaves a file named by its PID in a
folder that the workers of one `bentoml serve` share: inside the Prometheus multiprocess folder that BentoML
gives them and empties when it starts (elsewhere, a temporary folder named by their parent). The instance is
ready when the live workers with a file number as many as it has workers; files of dead workers are removed
when seen.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class InstanceReadiness:
    def __init__(self, workers: int, directory: Path | None = None) -> None:
        self.workers = workers
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")  # its collector reads only *.db files
        self.directory = directory or (
            Path(shared) / "ready" if shared else Path(tempfile.gettempdir()) / f"penguin-serve-ready-{os.getppid()}"
        )

    def worker_ready(self) -> None:
        """This worker has loaded and checked its model."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / str(os.getpid())).touch()

    def ready_workers(self) -> int:
        if not self.directory.is_dir():
            return 0
        ready = 0
        for entry in self.directory.iterdir():
            if entry.name.isdigit() and _alive(int(entry.name)):
                ready += 1
            else:
                entry.unlink(missing_ok=True)
        return ready

    def all_ready(self) -> bool:
        return self.ready_workers() >= self.workers
