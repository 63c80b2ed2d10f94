"""``current_time``: the date and time now in an IANA time zone."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .._errors import ToolError
from .._tools import Tool

__all__ = ["current_time"]

# IANA names are letters, digits and - + _ / (Etc/GMT+5, America/Argentina/Buenos_Aires).
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+){0,3}")


def now(timezone: str = "UTC") -> dict[str, str]:
    """The current date and time in a time zone.

    Args:
        timezone: an IANA time zone name such as "Europe/Paris", "America/New_York" or "UTC"
    """
    name = timezone.strip()
    if len(name) > 64 or not _ZONE_NAME.fullmatch(name):
        raise ToolError(f"{timezone[:64]!r} is not an IANA time zone name (like 'Europe/Paris')")
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ToolError(
            f"unknown time zone {name!r}; use an IANA name like 'Europe/Paris'"
        ) from None
    moment = datetime.now(zone)
    return {
        "timezone": name,
        "iso": moment.isoformat(timespec="seconds"),
        "date": moment.date().isoformat(),
        "time": moment.strftime("%H:%M:%S"),
        "weekday": moment.strftime("%A"),
        "utc_offset": moment.strftime("%z"),
        "abbreviation": moment.tzname() or "",
    }


current_time = Tool(now, name="current_time", timeout=5.0, max_output_chars=1_000)
