"""Time zone names: the IANA names a source's or the display's day buckets follow.

Names are checked once, where they are read (the sources file, the settings, a query), against
the IANA database that ships with Python's `tzdata`; an unknown name is a clear error there
rather than UTC figures later.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC_NAME = "UTC"


def checked_timezone(name: str) -> str:
    """`name` if it is an IANA time zone (e.g. `Europe/Berlin`), else ValueError saying so."""
    if not name or name != name.strip() or ".." in name or name.startswith("/"):
        raise ValueError(f"'{name[:80]}' is not an IANA time zone name such as Europe/Berlin")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone '{name[:80]}': use an IANA name such as Europe/Berlin, "
            "America/New_York or UTC"
        ) from None
    return name
