"""Time-bound assignments: when an assignment holds.

An assignment (a user's profile) may carry a term: ``valid_from`` and/or ``valid_until``, instants in UTC.
It holds from ``valid_from`` (included) until ``valid_until`` (excluded): one microsecond before
``valid_until`` it grants, at ``valid_until`` it no longer does. A date given for either bound is read in
Europe/Brussels: ``valid_from: 2027-01-01`` starts at midnight that day, ``valid_until: 2027-01-31`` holds
through the whole of that day (it ends at midnight starting 1 February, Brussels time). An assignment
without a term holds as long as it is assigned, as before terms existed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

BRUSSELS = ZoneInfo("Europe/Brussels")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def start_of(day: date) -> datetime:
    """Midnight starting ``day`` in Brussels, in UTC."""
    return datetime.combine(day, time(0), BRUSSELS).astimezone(UTC)


def end_of(day: date) -> datetime:
    """Midnight ending ``day`` in Brussels (the start of the next day), in UTC."""
    return start_of(day + timedelta(days=1))


def brussels_day(moment: datetime) -> date:
    return aware(moment).astimezone(BRUSSELS).date()


def aware(moment: datetime) -> datetime:
    """In UTC with its zone (SQLite hands back naive datetimes, always written in UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_bound(text: str, *, end: bool) -> datetime:
    """A bound as the API takes it: a date (``2027-01-31``, Brussels) or an instant with its offset
    (``2027-01-31T17:00:00+01:00``, ``...Z``). ``end``: a date means the end of that day. ValueError
    for anything else (an instant without an offset is ambiguous and refused)."""
    if _DATE.match(text):
        day = date.fromisoformat(text)
        return end_of(day) if end else start_of(day)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("an instant needs its offset (Z or +01:00)")
    return moment.astimezone(UTC)


def timestamp(moment: datetime | None) -> float | None:
    return None if moment is None else aware(moment).timestamp()


@dataclass(frozen=True)
class Term:
    """When an assignment holds, as epoch seconds (None: unbounded on that side)."""

    start: float | None = None
    end: float | None = None

    def holds(self, at: float) -> bool:
        return (self.start is None or self.start <= at) and (self.end is None or at < self.end)

    def ended(self, at: float) -> bool:
        return self.end is not None and self.end <= at

    def next_change(self, at: float) -> float | None:
        """The first bound after ``at``, if any."""
        later = [b for b in (self.start, self.end) if b is not None and b > at]
        return min(later) if later else None

    @classmethod
    def of(cls, valid_from: datetime | None, valid_until: datetime | None) -> Term:
        return cls(timestamp(valid_from), timestamp(valid_until))

    @property
    def valid_from(self) -> datetime | None:
        return None if self.start is None else datetime.fromtimestamp(self.start, UTC)

    @property
    def valid_until(self) -> datetime | None:
        return None if self.end is None else datetime.fromtimestamp(self.end, UTC)


@dataclass(frozen=True)
class Assignment:
    """One profile given to a user, with its term (both bounds None: no term, as a plain profile id)."""

    profile_id: int
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    @property
    def bounded(self) -> bool:
        return self.valid_from is not None or self.valid_until is not None

    @property
    def term(self) -> Term:
        return Term.of(self.valid_from, self.valid_until)


def assignments(items: Iterable[int | Assignment]) -> dict[int, Assignment]:
    """Plain profile ids and ``Assignment``s, by profile id (a later item for the same profile wins)."""
    out: dict[int, Assignment] = {}
    for item in items:
        found = item if isinstance(item, Assignment) else Assignment(int(item))
        out[found.profile_id] = found
    return out


def next_change(terms: Mapping[str, Mapping[int, Term]], at: float) -> float:
    """The first bound after ``at`` of any of these terms (inf: none)."""
    found = float("inf")
    for by_profile in terms.values():
        for term in by_profile.values():
            nxt = term.next_change(at)
            if nxt is not None and nxt < found:
                found = nxt
    return found
