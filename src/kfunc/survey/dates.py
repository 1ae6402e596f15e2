"""When each kernel release came out, for dating source trees that carry no git
history (tarballs, Debian's linux-source packages).

``RELEASE_DATES`` holds the dates of the mainline "Linux X.Y" release commits
(as ``git log -1 --format=%cs vX.Y`` prints them in torvalds/linux.git; listed at
https://kernelnewbies.org/LinuxVersions). A stable tree such as 6.12.117 is dated
by its series (6.12): stable updates rarely add helpers or kfuncs, and the chart
is about when interfaces reached mainline.

For a series newer than the table, a Debian package's own changelog dates it:
the entry that says "New upstream release: https://kernelnewbies.org/Linux_X.Y"
(Debian usually uploads within days of the release; the date is marked as such).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re

__all__ = ["RELEASE_DATES", "date_from_debian_changelog", "release_date", "series_of"]

RELEASE_DATES: dict[str, str] = {
    "3.18": "2014-12-07", "3.19": "2015-02-08", "4.0": "2015-04-12", "4.1": "2015-06-21",
    "4.2": "2015-08-30", "4.3": "2015-11-01", "4.4": "2016-01-10", "4.5": "2016-03-13",
    "4.6": "2016-05-15", "4.7": "2016-07-24", "4.8": "2016-10-02", "4.9": "2016-12-11",
    "4.10": "2017-02-19", "4.11": "2017-04-30", "4.12": "2017-07-02", "4.13": "2017-09-03",
    "4.14": "2017-11-12", "4.15": "2018-01-28", "4.16": "2018-04-01", "4.17": "2018-06-03",
    "4.18": "2018-08-12", "4.19": "2018-10-22", "4.20": "2018-12-23", "5.0": "2019-03-03",
    "5.1": "2019-05-05", "5.2": "2019-07-07", "5.3": "2019-09-15", "5.4": "2019-11-24",
    "5.5": "2020-01-26", "5.6": "2020-03-29", "5.7": "2020-05-31", "5.8": "2020-08-02",
    "5.9": "2020-10-11", "5.10": "2020-12-13", "5.11": "2021-02-14", "5.12": "2021-04-25",
    "5.13": "2021-06-27", "5.14": "2021-08-29", "5.15": "2021-10-31", "5.16": "2022-01-09",
    "5.17": "2022-03-20", "5.18": "2022-05-22", "5.19": "2022-07-31", "6.0": "2022-10-02",
    "6.1": "2022-12-11", "6.2": "2023-02-19", "6.3": "2023-04-23", "6.4": "2023-06-25",
    "6.5": "2023-08-27", "6.6": "2023-10-30", "6.7": "2024-01-07", "6.8": "2024-03-10",
    "6.9": "2024-05-12", "6.10": "2024-07-14", "6.11": "2024-09-15", "6.12": "2024-11-17",
    "6.13": "2025-01-19", "6.14": "2025-03-24", "6.15": "2025-05-25", "6.16": "2025-07-27",
    "6.17": "2025-09-28",
}  # fmt: skip


def series_of(version: str) -> str | None:
    """``6.12`` from ``6.12.117``, ``v6.12``, ``6.12.117-1~deb12u1`` or ``linux-source-6.12``."""
    m = re.search(r"(\d+)\.(\d+)", version)
    return f"{m[1]}.{m[2]}" if m else None


def date_from_debian_changelog(changelog: str, series: str) -> dt.date | None:
    """The date of the Debian upload announcing upstream release ``series``."""
    marker = re.compile(rf"kernelnewbies\.org/Linux_{re.escape(series)}(?!\d)")
    found = None
    # Entries run newest first: keep the last (oldest) that announces the release.
    for entry in re.split(r"\n(?=linux[\w.-]* \()", changelog):
        if marker.search(entry):
            m = re.search(r"^ -- .*?>  (.+)$", entry, re.M)
            if m:
                found = email.utils.parsedate_to_datetime(m[1].strip()).date()
    return found


def release_date(version: str, debian_changelog: str | None = None) -> tuple[dt.date | None, str]:
    """The release date of ``version``'s series and how it is known."""
    series = series_of(version)
    if series is None:
        return None, "unknown"
    if series in RELEASE_DATES:
        return dt.date.fromisoformat(RELEASE_DATES[series]), f"Linux {series} release"
    if debian_changelog:
        found = date_from_debian_changelog(debian_changelog, series)
        if found:
            return found, f"Debian's first upload of {series} (approximate)"
    return None, "unknown"
