"""The use cases speak English to the JSON API; the web UI tells the same errors in the reader's
language (the manual's own words where the manual has them)."""

from __future__ import annotations

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
    NotFound,
    ProfileAssigned,
    ProfileIncluded,
    ProfileMissing,
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
}


def action_label(action: str) -> str:
    label = ACTIONS.get(action)
    return str(label) if label is not None else action


def in_use_message() -> str:
    return _(
        "The profile you want to delete is assigned to one or more users. Please unassign it first."
    )


def error_message(err: ServiceError) -> str:
    """The reader's sentence for a refusal, chosen by its class (never by its English message)."""
    if isinstance(err, ProfileIncluded):
        return _("The profile you want to delete is included in other profiles. Please remove it from them first.")
    if isinstance(err, ProfileAssigned):
        return in_use_message()
    if isinstance(err, BuiltinProfile):
        return _("The built-in profile “All access” cannot be deleted and its functions cannot be changed.")
    if isinstance(err, DuplicateDescription):
        details = err.details if isinstance(err.details, dict) else {}
        return _("Another profile of this CPAS already has the description “%(description)s”.",
                 description=details.get("description", ""))
    if isinstance(err, StaleVersion):
        return stale_message()
    if isinstance(err, UserInactive):
        return _("This user is inactive: reactivate them before assigning profiles.")
    if isinstance(err, Conflict):
        return _("This change conflicts with another one. Reload the page and try again.")
    if isinstance(err, UnknownFunction):
        details = err.details if isinstance(err.details, dict) else {}
        return _("Unknown function(s): %(codes)s.", codes=", ".join(details.get("unknown", [])))
    if isinstance(err, UnknownCpas):
        return _("This CPAS is not known to the service.")
    if isinstance(err, NotFound):
        return _("This profile or user does not exist (any more) in this CPAS.")
    if isinstance(err, Forbidden):
        return _("You may not manage this CPAS.")
    if isinstance(err, Unavailable):
        return _("The service is temporarily unavailable; nothing was changed. Please try again in a moment.")
    if isinstance(err, InclusionCycle):
        return _("A profile cannot include itself, directly or through other profiles.")
    if isinstance(err, InclusionTooDeep):
        return _("Profiles may include each other at most %(depth)s levels deep.", depth=err.limit)
    if isinstance(err, ProfileMissing):
        return _("A chosen profile does not exist (any more) in this CPAS. Reload the page.")
    if isinstance(err, CoveredActions):
        return _("Some chosen actions have no checkbox of their own; choose the function that covers them.")
    if isinstance(err, DescriptionMissing):
        return _("Give a French or a Dutch description (or both).")
    return _("The request could not be carried out: %(reason)s", reason=err.message)


def stale_message() -> str:
    return _(
        "Someone else saved this profile while you were editing it. Your choices are kept below: "
        "check them and save again to replace the other changes, or go back to discard yours."
    )
