"""The use cases speak English to the JSON API; the web UI tells the same errors in the reader's
language (the manual's own words where the manual has them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ..errors import (
    BuiltinProfile,
    Conflict,
    CoveredActions,
    DescriptionMissing,
    DuplicateDescription,
    Forbidden,
    InclusionCycle,
    InclusionTooDeep,
    InvalidTerm,
    NotFound,
    ProfileAssigned,
    ProfileIncluded,
    ProfileMissing,
    ReviewClosed,
    ReviewDateInvalid,
    ReviewDecisionUnknown,
    ReviewItemDecided,
    ReviewItemUnknown,
    ReviewOpen,
    ReviewUndecided,
    ReviewUnknown,
    ServiceError,
    StaleVersion,
    Unavailable,
    UnknownCpas,
    UnknownFunction,
    UserInactive,
)

ACTIONS = {
    "profile.create": _l("Profile created"),
    "profile.update": _l("Profile changed"),
    "profile.delete": _l("Profile deleted"),
    "user.assign": _l("Profiles assigned"),
    "user.deactivate": _l("User deactivated"),
    "user.reactivate": _l("User reactivated"),
    "user.first_login": _l("First login"),
    "user.update": _l("User details changed"),
    "cpas.create": _l("CPAS created"),
    "admin.locked": _l("Admin account locked (too many wrong passwords)"),
    "admin.unlocked": _l("Admin account unlocked"),
    "review.start": _l("Access review started"),
    "review.decide": _l("Access review decision"),
    "review.close": _l("Access review closed and signed off"),
    "assignment.expired": _l("Assignment ended"),
}


def action_label(action: str) -> str:
    label = ACTIONS.get(action)
    return str(label) if label is not None else action


def in_use_message() -> str:
    return _(
        "The profile you want to delete is assigned to one or more users. Please unassign it first."
    )


def _details(err: ServiceError) -> dict[str, Any]:
    return err.details if isinstance(err.details, dict) else {}


# Each refusal's sentence in the reader's language, by class: the first class the error is an instance of
# wins, so a subclass comes before its parent. The JSON API's table (class -> status, code) is errors.py.
MESSAGES: tuple[tuple[type[ServiceError], Callable[[Any], str]], ...] = (
    # access reviews (web/reviews.py)
    (ReviewUnknown, lambda err: _("This access review does not exist (any more) in this CPAS.")),
    (ReviewItemUnknown, lambda err: _("This user is not part of this access review.")),
    (ReviewClosed, lambda err: _("This access review is closed: it can no longer be changed.")),
    (ReviewOpen, lambda err: _(
        "An access review of this CPAS is already open: finish it before starting another.")),
    (ReviewUndecided, lambda err: _(
        "The review cannot be closed: a decision is still missing for some users.")),
    (ReviewItemDecided, lambda err: _("A decision was already recorded for this user.")),
    (ReviewDateInvalid, lambda err: review_date_message(err.problem)),
    (ReviewDecisionUnknown, lambda err: _("Choose a decision.")),
    (ProfileIncluded, lambda err: _(
        "The profile you want to delete is included in other profiles. Please remove it from them first.")),
    (ProfileAssigned, lambda err: in_use_message()),
    (BuiltinProfile, lambda err: _(
        "The built-in profile “All access” cannot be deleted and its functions cannot be changed.")),
    (DuplicateDescription, lambda err: _("Another profile of this CPAS already has the description “%(description)s”.",
                                         description=_details(err).get("description", ""))),
    (StaleVersion, lambda err: stale_message()),
    (UserInactive, lambda err: _("This user is inactive: reactivate them before assigning profiles.")),
    (InvalidTerm, lambda err: _("The end date is before the start date.")),
    (Conflict, lambda err: _("This change conflicts with another one. Reload the page and try again.")),
    (UnknownFunction, lambda err: _("Unknown function(s): %(codes)s.",
                                    codes=", ".join(_details(err).get("unknown", [])))),
    (UnknownCpas, lambda err: _("This CPAS is not known to the service.")),
    (NotFound, lambda err: _("This profile or user does not exist (any more) in this CPAS.")),
    (Forbidden, lambda err: _("You may not manage this CPAS.")),
    (Unavailable, lambda err: _(
        "The service is temporarily unavailable; nothing was changed. Please try again in a moment.")),
    (InclusionCycle, lambda err: _("A profile cannot include itself, directly or through other profiles.")),
    (InclusionTooDeep, lambda err: _("Profiles may include each other at most %(depth)s levels deep.",
                                     depth=err.limit)),
    (ProfileMissing, lambda err: _("A chosen profile does not exist (any more) in this CPAS. Reload the page.")),
    (CoveredActions, lambda err: _(
        "Some chosen actions have no checkbox of their own; choose the function that covers them.")),
    (DescriptionMissing, lambda err: _("Give a French or a Dutch description (or both).")),
)


def review_date_message(problem: str) -> str:
    """A review date refused by the use case (``ReviewDateInvalid.problem``)."""
    if problem == "due":
        return _("The due date cannot be in the past.")
    if problem == "until":
        return _("Give a date after today until which the access is kept.")
    if problem == "until_unexpected":
        return _("Only “keep until a date” takes a date.")
    return _("This date is out of range.")


def error_message(err: ServiceError) -> str:
    """The reader's sentence for a refusal, chosen by its class (never by its English message)."""
    for kind, sentence in MESSAGES:
        if isinstance(err, kind):
            return sentence(err)
    return _("The request could not be carried out: %(reason)s", reason=err.message)


def stale_message() -> str:
    return _(
        "Someone else saved this profile while you were editing it. Your choices are kept below: "
        "check them and save again to replace the other changes, or go back to discard yours."
    )
