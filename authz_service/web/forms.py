"""Flask-WTF forms. Every POST form carries a CSRF token (checked for the whole blueprint before any
view runs); the lists of checkboxes (functions, blocks, profiles) are read beside the form because
their choices come from the catalog and the CPAS, not from the form class."""

from __future__ import annotations

import unicodedata
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, Field, HiddenField, PasswordField, SelectField, StringField, TimeField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from ..inputs import clean_text

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
