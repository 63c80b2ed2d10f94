"""Shared by the CLI tests: where the console script is, and the type of the ``cli`` fixture."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

SCRIPT = Path(sys.executable).with_name("chat-shell")

Run = Callable[..., subprocess.CompletedProcess[str]]

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


def without_permission_override() -> None:
    """For ``subprocess``'s ``preexec_fn``: as root, give up the two capabilities that let root
    read and write any file, so that file modes bind the child as they bind any user (it keeps
    the owner's rights to root's own files, the Python it runs from among them)."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")
