"""The end-to-end tests on PostgreSQL use the fixtures of tests/postgres (``postgres_support``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("psycopg") is not None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "postgres"))
    from postgres_support import postgres_url, server_url

    __all__ = ["postgres_url", "server_url"]
