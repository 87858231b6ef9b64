"""How the admin UI says when an assignment holds (issue 14, ``terms.py``), in the reader's language.

A person reads and types days in Brussels, and an end date includes its day: an assignment whose
``valid_until`` is midnight starting 1 February 2027 is shown "jusqu'au 31/01/2027 inclus" / "tot en met
31/01/2027", and once that instant has passed, "terminée le 31/01/2027" / "beëindigd op 31/01/2027". The
instant compared with is the service's (``Service.now``, which tests inject), as the engine decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask_babel import gettext as _

from ..terms import Term, brussels_day

_TICK = timedelta(microseconds=1)


def first_day(term: Term | None) -> date | None:
    """The day, in Brussels, the assignment begins (None: no start)."""
    return None if term is None or term.valid_from is None else brussels_day(term.valid_from)


def last_day(term: Term | None) -> date | None:
    """The last day, in Brussels, the assignment holds (``valid_until`` is excluded; None: no end)."""
    return None if term is None or term.valid_until is None else brussels_day(term.valid_until - _TICK)


def day_text(day: date) -> str:
    return day.strftime("%d/%m/%Y")


@dataclass(frozen=True)
class TermNote:
    """What the UI says of one assignment's term: its words and its state (``ends``: in force, with an end;
    ``ended``: over, so it grants nothing; ``later``: not begun yet)."""

    text: str
    state: str

    def __str__(self) -> str:
        return self.text


def term_note(term: Term | None, now: datetime) -> TermNote | None:
    """None when there is nothing to say: no term, or a start already passed and no end."""
    if term is None:
        return None
    at = now.timestamp()
    start, end = first_day(term), last_day(term)
    if end is not None and term.ended(at):
        return TermNote(_("ended on %(day)s", day=day_text(end)), "ended")
    if start is not None and term.start is not None and at < term.start:
        if end is not None:
            return TermNote(_("from %(start)s until %(end)s inclusive", start=day_text(start), end=day_text(end)),
                            "later")
        return TermNote(_("from %(day)s", day=day_text(start)), "later")
    if end is not None:
        return TermNote(_("until %(day)s inclusive", day=day_text(end)), "ends")
    return None
