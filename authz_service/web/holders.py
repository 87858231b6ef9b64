"""Who may use a function of a CPAS, for the admin UI: now ("Qui peut utiliser cette fonction ?", from the
decision engine's index) or at a past instant ("Qui avait accès ?", the data-protection officer's page, from
the policy's history); each user with the profiles that grant the function, names in the reader's language;
and the latter as a CSV for a Belgian spreadsheet, as the Admin-Logs' (``trail.csv_lines``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo

from flask_babel import gettext as _

from ..engine import CpasPolicy
from .trail import _cell


@dataclass(frozen=True)
class Holder:
    user: str
    name: str  # the user id when the store has no name
    profiles: tuple[tuple[int, str], ...]  # (id, description in the reader's language), by description


def holders(policy: CpasPolicy, function: str, names: Mapping[str, str], lang: str) -> list[Holder]:
    """The users ``policy`` allows ``function``, by name, with the profiles that grant it."""
    rows = [Holder(user, names.get(user) or user,
                   tuple(sorted(((pid, policy.description(pid, lang)) for pid in granted_by),
                                key=lambda p: (p[1].casefold(), p[0]))))
            for user, granted_by in policy.grants_of(function)]
    return sorted(rows, key=lambda h: (h.name.casefold(), h.user))


def instant(day: date, moment: time | None, zone: tzinfo) -> datetime:
    """A day and a time of day read in ``zone`` (Brussels): the instant they name; no time, the day's end
    (who had access on that day, at its close)."""
    if moment is None:
        moment = time(23, 59, 59, 999999)
    return datetime.combine(day, moment, tzinfo=zone)


def csv_lines(rows: list[Holder], function_label: str, at: datetime) -> Iterator[str]:
    """A byte-order mark, a header in the reader's language, semicolons; the instant in Brussels time."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow([_("Function"), _("Moment"), _("Name"), _("User ID"), _("Granted by the profiles")])
    when = at.strftime("%d/%m/%Y %H:%M:%S")
    for row in rows:
        writer.writerow([_cell(function_label), when, _cell(row.name), _cell(row.user),
                         _cell(" ; ".join(name for _pid, name in row.profiles))])
    yield buffer.getvalue()
