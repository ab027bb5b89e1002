"""The instance's readiness (penguin_serve/serving/readiness.py) in one process: a worker counts once it has
said so and while its process lives; a dead worker's mark is removed when seen. tests/test_workers.py runs it
across the real workers of `bentoml serve`."""

import os
import subprocess
import sys

import pytest

from penguin_serve.serving.readiness import InstanceReadiness


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_instance_is_ready_once_as_many_live_workers_as_it_has_said_so(tmp_path):
    readiness = InstanceReadiness(2, tmp_path / "ready")
    assert readiness.ready_workers() == 0 and not readiness.all_ready()  # no folder yet
    readiness.worker_ready()
    assert readiness.ready_workers() == 1 and not readiness.all_ready()
    (tmp_path / "ready" / str(os.getppid())).touch()  # a second live process: the other worker
    assert readiness.ready_workers() == 2 and readiness.all_ready()


# A process that names any signal that reaches it and ends: one its parent ignores (nohup ignores SIGHUP, and
# what a parent ignores its children inherit) would not end a plain `sleep`.
LISTENER = """
import signal, sys, time
for number in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}:
    try:
        signal.signal(number, lambda n, _: sys.exit(signal.Signals(n).name))
    except (OSError, ValueError):
        pass
print("listening", flush=True)
time.sleep(30)
"""


def test_looking_at_a_live_worker_leaves_it_running(tmp_path):
    readiness = InstanceReadiness(1, tmp_path / "ready")
    (tmp_path / "ready").mkdir()
    worker = subprocess.Popen([sys.executable, "-c", LISTENER], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline() == "listening\n"
        (tmp_path / "ready" / str(worker.pid)).touch()
        assert readiness.ready_workers() == 1
        with pytest.raises(subprocess.TimeoutExpired):  # no signal was sent to it (signal 0 only asks)
            worker.wait(timeout=0.5)
    finally:
        worker.kill()
        worker.wait()


def test_a_dead_workers_mark_does_not_count_and_is_removed(tmp_path):
    readiness = InstanceReadiness(2, tmp_path / "ready")
    readiness.worker_ready()
    dead = tmp_path / "ready" / str(dead_pid())
    dead.touch()
    (tmp_path / "ready" / "not-a-pid").touch()
    assert readiness.ready_workers() == 1 and not readiness.all_ready()
    assert not dead.exists() and not (tmp_path / "ready" / "not-a-pid").exists()


def test_the_folder_is_the_one_the_workers_of_one_serve_share(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert InstanceReadiness(2).directory == tmp_path / "ready"
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    assert InstanceReadiness(2).directory.name == f"penguin-serve-ready-{os.getppid()}"


def test_a_worker_makes_the_folder_with_its_parents(tmp_path):
    readiness = InstanceReadiness(1, tmp_path / "not-yet" / "ready")
    readiness.worker_ready()
    assert readiness.all_ready()


def test_another_users_live_process_counts_as_alive(tmp_path, monkeypatch):
    readiness = InstanceReadiness(1, tmp_path / "ready")
    (tmp_path / "ready").mkdir()
    (tmp_path / "ready" / "4242").touch()

    def kill(pid, signal):
        raise PermissionError(pid)  # as os.kill answers for a process of another user

    monkeypatch.setattr("penguin_serve.serving.readiness.os.kill", kill)
    assert readiness.ready_workers() == 1
