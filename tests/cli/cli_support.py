"""Shared by the CLI tests: where the console script is, and the type of the ``cli`` fixture."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

SCRIPT = Path(sys.executable).with_name("chat-shell")

Run = Callable[..., subprocess.CompletedProcess[str]]
