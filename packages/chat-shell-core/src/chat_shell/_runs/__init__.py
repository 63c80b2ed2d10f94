"""Runs: the run-store contract every store implements (``contract``), the live run its process
holds (``run``), the built-in memory store (``memory``) and store look-up by entry point
(``plugins``)."""
