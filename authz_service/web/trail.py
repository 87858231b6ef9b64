"""What the Admin-Logs show a configuration manager: who, a translated action, what it concerns and a short
readable difference (function labels and profile names, not codes and ids), in the reader's language;
and the same as a CSV that opens cleanly in a Belgian Excel (semicolons, UTF-8 with a byte-order mark,
Brussels time, translated headers). The raw before/after JSON stays available behind a toggle and in
the CSV's last columns.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from flask_babel import gettext as _

from ..catalog import Catalog
from ..reads import AuditRow
from .messages import action_label

SHOWN = 8  # names listed before "and N more"
CSV_BATCH = 500


@dataclass(frozen=True)
class Entry:
    at: Any  # aware datetime in the reader's zone
    actor: str  # as the trail has it
    who: str  # readable
    action: str
    action_label: str
    subject: str
    target: str
    changes: list[str]
    before: str  # raw JSON, indented ("" when none)
    after: str


def entries(rows: Iterable[AuditRow], catalog: Catalog, profiles: Mapping[int, str], lang: str,
            zone: tzinfo) -> list[Entry]:
    """``profiles``: the CPAS's profile names by id, in the reader's language (a deleted one is "#id")."""
    return [
        Entry(
            at=r.at.astimezone(zone),
            actor=r.actor,
            who=who(r.actor),
            action=r.action,
            action_label=action_label(r.action),
            subject=subject(r.before, r.after, lang),
            target=r.target,
            changes=changes(r, catalog, profiles, lang),
            before=json.dumps(r.before, ensure_ascii=False, indent=1) if r.before is not None else "",
            after=json.dumps(r.after, ensure_ascii=False, indent=1) if r.after is not None else "",
        )
        for r in rows
    ]


def who(actor: str) -> str:
    """``admin:marie`` -> "marie (admin account)"; an API key, the command line, a sign-in likewise."""
    kind, _sep, name = actor.partition(":")
    kinds = {"admin": _("admin account"), "key": _("API key"), "cli": _("command line"),
             "sso": _("single sign-on"), "web": _("admin web UI")}
    if not name or kind not in kinds:
        return actor
    if kind == "web" and name == "login":
        return _("sign-in page")
    return f"{name} ({kinds[kind]})"


def subject(before: Any, after: Any, lang: str) -> str:
    """The profile's description or the user's name the entry is about."""
    snapshot = after if isinstance(after, dict) else before if isinstance(before, dict) else {}
    if "description_fr" in snapshot or "description_nl" in snapshot:
        return str((snapshot.get("description_nl") if lang == "nl" else snapshot.get("description_fr"))
                   or snapshot.get("description_fr") or snapshot.get("description_nl") or "")
    return str(snapshot.get("name") or snapshot.get("name_nl" if lang == "nl" else "name_fr") or "")


def _line(what: str, value: str) -> str:
    """"what: value", with the reader's typography (French puts a space before the colon)."""
    return _("%(what)s: %(value)s", what=what, value=value)


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    if len(items) > SHOWN:
        shown += " " + _("and %(num)s more", num=len(items) - SHOWN)
    return shown


def changes(row: AuditRow, catalog: Catalog, profiles: Mapping[int, str], lang: str) -> list[str]:
    """The difference between before and after, one short line per field that changed."""
    before = row.before if isinstance(row.before, dict) else {}
    after = row.after if isinstance(row.after, dict) else {}
    lines: list[str] = []

    def function(code: str) -> str:
        return catalog.functions[code].label.get(lang) if code in catalog else code

    def profile(pid: Any) -> str:
        return profiles.get(pid, f"#{pid}") if isinstance(pid, int) else str(pid)

    def listed(key: str, label: Any, added_text: str, removed_text: str) -> None:
        old, new = before.get(key), after.get(key)
        if not isinstance(old, list) and not isinstance(new, list):
            return
        old_set, new_set = set(old or []), set(new or [])
        added = [label(x) for x in (new or []) if x not in old_set]
        removed = [label(x) for x in (old or []) if x not in new_set]
        if added:
            lines.append(_line(added_text, _names(added)))
        if removed:
            lines.append(_line(removed_text, _names(removed)))

    def text(key: str, label: str) -> None:
        old, new = before.get(key), after.get(key)
        if old == new or (key not in before and key not in after):
            return
        if old in (None, "") and row.before is None:
            lines.append(_line(label, f"« {new} »"))
        elif new in (None, ""):
            lines.append(_line(label, f"« {old} » → —"))
        else:
            lines.append(_line(label, f"« {old} » → « {new} »"))

    text("description_fr", _("French description"))
    text("description_nl", _("Dutch description"))
    text("name", _("Name"))
    text("name_fr", _("Name (FR)"))
    text("name_nl", _("Name (NL)"))
    listed("functions", function, _("Functions added"), _("Functions removed"))
    listed("includes", profile, _("Included profiles added"), _("Included profiles removed"))
    listed("profiles", profile, _("Profiles given"), _("Profiles taken away"))
    if "active" in after and before.get("active") != after.get("active") and row.before is not None:
        lines.append(_("Active again") if after["active"] else _("Deactivated"))
    if row.action == "admin.locked":
        lines.append(_("Locked for %(num)s minutes after too many wrong passwords", num=after.get("minutes", "?")))
    elif row.action == "admin.unlocked":
        lines.append(_("Unlocked: the lock's time has passed"))
    return lines


def csv_lines(rows: Iterable[Entry]) -> Iterator[str]:
    """The CSV for spreadsheets in Belgium, in batches: a byte-order mark, a header in the reader's
    language, semicolons, Brussels time; a cell a spreadsheet would run as a formula is defused."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow([_("When"), _("Who"), _("Action"), _("What"), _("Target"), _("Changes"), _("Before"),
                     _("After"), _("Author (as recorded)"), _("Action code")])
    for n, e in enumerate(rows, 1):
        writer.writerow([e.at.strftime("%d/%m/%Y %H:%M:%S"), _cell(e.who), _cell(e.action_label), _cell(e.subject),
                         _cell(e.target), _cell(" ; ".join(e.changes)), _cell(_compact(e.before)),
                         _cell(_compact(e.after)), _cell(e.actor), _cell(e.action)])
        if n % CSV_BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _compact(indented: str) -> str:
    return json.dumps(json.loads(indented), ensure_ascii=False, sort_keys=True) if indented else ""


def _cell(text: str) -> str:
    # a spreadsheet must not run a cell as a formula
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
