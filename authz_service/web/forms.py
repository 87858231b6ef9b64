"""Flask-WTF forms. Every POST form carries a CSRF token (checked for the whole blueprint before any
view runs); the lists of checkboxes (functions, blocks, profiles) are read beside the form because
their choices come from the catalog and the CPAS, not from the form class."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, Field, HiddenField, PasswordField, SelectField, StringField, TimeField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from ..inputs import clean_text
from ..terms import Assignment, Term, end_of, start_of
from .periods import first_day, last_day

_REQUIRED = _l("This field is required.")
_TOO_LONG = _l("This field cannot be longer than %(max)d characters.")
_INVISIBLE = _l("This text contains invisible characters (zero-width spaces, text direction marks): retype it.")


def _strip(value: str | None) -> str | None:
    return " ".join(value.split()) if isinstance(value, str) else value


def _text(value: str | None) -> str | None:
    """A description as the JSON API stores it: NFC, runs of white space one space (checked below)."""
    return " ".join(unicodedata.normalize("NFC", value).split()) if isinstance(value, str) else value


def _visible(form: Any, field: Field) -> None:
    """The JSON API's rules for descriptions (inputs.clean_text): no control or invisible characters."""
    if field.data:
        try:
            clean_text(field.data, max_length=len(field.data))
        except ValueError:
            raise ValidationError(str(_INVISIBLE)) from None


class LoginForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(_REQUIRED), Length(max=128, message=_TOO_LONG)],
                           filters=[_strip])
    password = PasswordField(_l("Password"), validators=[DataRequired(_REQUIRED), Length(max=1024, message=_TOO_LONG)])
    next = HiddenField()


class ProfileForm(FlaskForm):
    description_nl = StringField(_l("Dutch description"),
                                 validators=[Optional(), Length(max=200, message=_TOO_LONG), _visible],
                                 filters=[_text])
    description_fr = StringField(_l("French description"),
                                 validators=[Optional(), Length(max=200, message=_TOO_LONG), _visible],
                                 filters=[_text])
    version = HiddenField()

    def validate(self, extra_validators: Any = None) -> bool:
        ok = super().validate(extra_validators)
        if not self.description_fr.data and not self.description_nl.data:
            self.description_fr.errors = [*self.description_fr.errors,
                                          str(_l("Give a French or a Dutch description (or both)."))]
            return False
        return ok


class ActionForm(FlaskForm):
    """A confirmation or a one-button action: only the CSRF token."""


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search form

    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("To"), validators=[Optional()])
    actor = StringField(_l("Actor"), validators=[Optional(), Length(max=200, message=_TOO_LONG)], filters=[_strip])
    action = StringField(_l("Action"), validators=[Optional(), Length(max=64, message=_TOO_LONG)], filters=[_strip])


class AccessAtForm(FlaskForm):
    """"Qui avait accès ?": a function of the catalog (its choices set by the view), a day and a time of day
    in Brussels (none: the day's end)."""

    class Meta:
        csrf = False  # a GET search form

    function = SelectField(_l("Function"), validators=[DataRequired(_REQUIRED)], validate_choice=True)
    day = DateField(_l("Date"), validators=[DataRequired(_REQUIRED)])
    moment = TimeField(_l("Time (Brussels)"), validators=[Optional()], format=["%H:%M", "%H:%M:%S"])


# -- the dates of "Affecter les profils" (time-bound assignments, terms.py) -------------------------------
FROM_FIELD, UNTIL_FIELD = "from-", "until-"  # + the profile id: the two date inputs beside each profile
_BAD_DATE = _l("This date is not valid: give it as dd/mm/yyyy.")
_PAST_END = _l("This end date is in the past: the access would end at once. Choose today or a later day.")
_END_BEFORE_START = _l("The end date is before the start date.")


@dataclass
class TermFields:
    """The dates beside one profile as the form sent them (``YYYY-MM-DD`` from a date input, or empty: no
    bound) and what is wrong with them."""

    valid_from: str = ""
    valid_until: str = ""
    errors: list[str] = field(default_factory=list)


def _day(text: str) -> date | None:
    """A date input's value (``2027-01-31``) or a typed ``31/01/2027``; None if it is neither. Its bounds must
    exist in UTC (the first and last days of years 1 and 9999 do not)."""
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            day = datetime.strptime(text, pattern).date()
        except ValueError:
            continue
        try:
            start_of(day), end_of(day)
        except (OverflowError, ValueError):
            return None
        return day
    return None


def assignment_terms(
    values: Mapping[str, str], ids: Sequence[int], today: date, held: Mapping[int, Term]
) -> tuple[dict[int, TermFields], list[int | Assignment], bool]:
    """The dates sent beside each ticked profile of ``ids`` (the others' are ignored): what to show again,
    the items for ``Admin.set_user_profiles`` and whether every date is valid. An end date before ``today``
    (in Brussels) is refused, as it would end the access at once, unless it is the one the assignment
    already has (an ended assignment saved unchanged); an end before the start is refused. A date equal to
    the day of the bound the assignment has keeps that bound's exact instant, so that saving the page
    unchanged writes nothing, even for a bound given to the API as an instant."""
    fields: dict[int, TermFields] = {}
    items: list[int | Assignment] = []
    ok = True
    for pid in ids:
        sent = TermFields((values.get(f"{FROM_FIELD}{pid}") or "").strip()[:20],
                          (values.get(f"{UNTIL_FIELD}{pid}") or "").strip()[:20])
        fields[pid] = sent
        term = held.get(pid)
        start = _day(sent.valid_from) if sent.valid_from else None
        end = _day(sent.valid_until) if sent.valid_until else None
        if (sent.valid_from and start is None) or (sent.valid_until and end is None):
            sent.errors.append(str(_BAD_DATE))
        elif end is not None and end < today and end != last_day(term):
            sent.errors.append(str(_PAST_END))
        elif start is not None and end is not None and end < start:
            sent.errors.append(str(_END_BEFORE_START))
        if sent.errors:
            ok = False
            continue
        valid_from = None if start is None else (
            term.valid_from if term is not None and start == first_day(term) else start_of(start))
        valid_until = None if end is None else (
            term.valid_until if term is not None and end == last_day(term) else end_of(end))
        items.append(Assignment(pid, valid_from, valid_until) if valid_from or valid_until else pid)
    return fields, items, ok
