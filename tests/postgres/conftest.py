"""The PostgreSQL tests' fixtures (``postgres_support``)."""

from postgres_support import postgres_url, server_url

__all__ = ["postgres_url", "server_url"]
