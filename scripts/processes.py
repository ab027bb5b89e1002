"""Helpers for the local processes that scripts and tests start: free ports and kill-safety."""

from __future__ import annotations

import ctypes
import signal
import socket

PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def die_with_parent() -> None:
    """preexec_fn: if the starting process dies (even by SIGKILL), the kernel sends the child SIGTERM,
    so no server or emulator is left behind."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
