"""Helpers for the local processes that scripts and tests start: free ports and kill-safety."""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess

PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def die_with_parent() -> None:
    """preexec_fn: if the starting process dies (even by SIGKILL), the kernel sends the child SIGTERM,
    so no server or emulator is left behind."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop(process: subprocess.Popen, timeout_s: float = 15.0) -> int:
    """SIGTERM to a process we started, SIGKILL if it has not exited after timeout_s; its exit status."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
