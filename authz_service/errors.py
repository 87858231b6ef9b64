"""Errors are data: one small hierarchy, one table to HTTP, one JSON envelope.

``{"error": {"code": "<snake_case>", "message": "<human text>", "details": ...}}`` for every non-2xx
answer of the JSON API; never a stack trace, never SQL.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# What a 503 says about the store: fixed sentences (the driver's text, with hosts and ports, goes to the log)
STORE_SILENT = "the policy store does not answer"
STORE_UNREACHABLE = "the policy store cannot be reached"


class ServiceError(Exception):
    code = "invalid_request"
    status = 400

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequest(ServiceError):
    code, status = "invalid_request", 400


class UnknownFunction(ServiceError):
    code, status = "unknown_function", 400


class Unauthenticated(ServiceError):
    code, status = "unauthenticated", 401


class Forbidden(ServiceError):
    code, status = "forbidden", 403


class UnknownCpas(ServiceError):
    code, status = "unknown_cpas", 404


class NotFound(ServiceError):
    code, status = "not_found", 404


class ProfileInUse(ServiceError):
    code, status = "profile_in_use", 409


class BuiltinProfile(ServiceError):
    code, status = "builtin_profile", 409


class Conflict(ServiceError):
    code, status = "conflict", 409


class DuplicateDescription(ServiceError):
    code, status = "duplicate_description", 409


# -- typed refusals of the use cases: the JSON API shows their code, message and details; the web UI
# picks its own translated sentence by class (web/messages.py), never by reading the message
class FunctionsUnknown(UnknownFunction):
    def __init__(self, codes: list[str]) -> None:
        self.codes = codes
        super().__init__(f"unknown function code(s): {', '.join(codes)}", {"unknown": codes})


class CpasUnknown(UnknownCpas):
    def __init__(self, cpas: str) -> None:
        self.cpas = cpas
        super().__init__(f"CPAS {cpas} is not known to the service")


class RegionUnknown(InvalidRequest):
    def __init__(self, regions: tuple[str, ...]) -> None:
        self.regions = regions
        super().__init__(f"region must be one of {', '.join(regions)}")


class CpasExists(Conflict):
    def __init__(self, cpas: str) -> None:
        self.cpas = cpas
        super().__init__(f"CPAS {cpas} already exists")


class BuiltinUnchangeable(BuiltinProfile):
    """``what``: "delete", "functions" or "includes"."""

    TEXT = {
        "delete": "the built-in profile cannot be deleted",
        "functions": "the functions of the built-in profile cannot be changed",
        "includes": "the built-in profile cannot include other profiles",
    }

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(self.TEXT[what])


class ProfileNotFound(NotFound):
    def __init__(self, profile_id: int, cpas: str) -> None:
        self.profile_id, self.cpas = profile_id, cpas
        super().__init__(f"profile {profile_id} does not exist in CPAS {cpas}")


class UserNotFound(NotFound):
    def __init__(self, user: str, cpas: str) -> None:
        self.user, self.cpas = user, cpas
        super().__init__(f"user {user} has never logged in to CPAS {cpas}")


class StaleVersion(Conflict):
    def __init__(self, profile_id: int, current_version: int, sent: int) -> None:
        self.profile_id, self.current_version, self.sent = profile_id, current_version, sent
        super().__init__(
            f"profile {profile_id} was changed by someone else (version {current_version}, you sent {sent}); "
            "reload it and apply your changes again",
            {"current_version": current_version},
        )


class UserInactive(Conflict):
    def __init__(self, user: str) -> None:
        self.user = user
        super().__init__(f"user {user} is inactive; reactivate them before assigning profiles")


class InvalidTerm(InvalidRequest):
    code = "invalid_term"

    def __init__(self, profile_id: int) -> None:
        self.profile_id = profile_id
        super().__init__(f"the assignment of profile {profile_id} would end before it begins "
                         "(valid_until must be after valid_from)", {"profile": profile_id})


class DescriptionMissing(InvalidRequest):
    def __init__(self) -> None:
        super().__init__("a profile needs a French or a Dutch description (or both)")


class CoveredActions(InvalidRequest):
    """Actions without a checkbox of their own, with the functions that cover each."""

    def __init__(self, coverers: dict[str, list[str]]) -> None:
        self.coverers = coverers
        super().__init__(
            "these actions have no checkbox of their own; grant the function that covers them: "
            + ", ".join(f"{c} (by {', '.join(by)})" for c, by in coverers.items()),
            {"covered": list(coverers)},
        )


class ProfileMissing(InvalidRequest):
    """A profile named by an inclusion or an assignment that does not exist in the CPAS."""

    def __init__(self, profile_id: int, cpas: str, *, included: bool) -> None:
        self.profile_id, self.cpas, self.included = profile_id, cpas, included
        if included:
            super().__init__(f"included profile {profile_id} does not exist in CPAS {cpas}", {"includes": profile_id})
        else:
            super().__init__(f"profile {profile_id} does not exist in CPAS {cpas}", {"profile": profile_id})


class InclusionCycle(InvalidRequest):
    """``profile`` None: the profile includes itself."""

    def __init__(self, profile: int | None) -> None:
        self.profile = profile
        if profile is None:
            super().__init__("a profile cannot include itself")
        else:
            super().__init__("profile inclusions would form a cycle", {"profile": profile})


class InclusionTooDeep(InvalidRequest):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"profile inclusions may nest at most {limit} levels deep")


class ProfileAssigned(ProfileInUse):
    """The manual's refusal, in its own words (French message, Dutch in the details)."""

    FR = ("Le profil que vous voulez supprimer est affecté à un ou plusieurs utilisateurs. "
          "Veuillez d'abord le désaffecter.")
    NL = "Het profiel dat u wilt verwijderen is aan een of meer gebruikers toegekend. Gelieve het eerst in te trekken."

    def __init__(self, users: list[str]) -> None:
        self.users = users
        super().__init__(self.FR, {"message_nl": self.NL, "users": users})


class ProfileIncluded(ProfileInUse):
    FR = "Le profil que vous voulez supprimer est inclus dans d'autres profils. Veuillez d'abord l'en retirer."
    NL = "Het profiel dat u wilt verwijderen is opgenomen in andere profielen. Gelieve het daar eerst uit te halen."

    def __init__(self, profiles: list[int]) -> None:
        self.profiles = profiles
        super().__init__(self.FR, {"message_nl": self.NL, "profiles": profiles})


class HistoryUnavailable(ServiceError):
    """An instant the policy history cannot answer for: before the history began (migration 0007, the CPAS's
    creation) or before its last purge (``purge-history``)."""

    code, status = "history_unavailable", 400

    def __init__(self, cpas: str, at: str, since: str | None) -> None:
        super().__init__(
            f"no policy history of CPAS {cpas} at {at}" + (f": it begins at {since}" if since else ""),
            {"cpas": cpas, "at": at, "history_since": since},
        )


class PayloadTooLarge(ServiceError):
    code, status = "payload_too_large", 413


class Unavailable(ServiceError):
    code, status = "unavailable", 503


class VersionNotReached(Unavailable):
    """This instance's policy of the CPAS is older than the caller's token (min_policy_version) asks for,
    even after reading the store."""

    def __init__(self, cpas: str, minimum: int, version: int) -> None:
        self.cpas, self.minimum, self.version = cpas, minimum, version
        super().__init__(
            f"policy version {minimum} of CPAS {cpas} is not available here yet "
            f"(this instance has version {version}); retry shortly",
            {"policy_version": version, "min_policy_version": minimum},
        )


_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    411: "invalid_request",
    413: "payload_too_large",
    415: "invalid_request",
    429: "too_many_requests",
    503: "unavailable",
}


def envelope(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def error_response(error: ServiceError) -> Response:
    response = jsonify(envelope(error.code, error.message, error.details))
    response.status_code = error.status
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="authz-service"'
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def _service_error(error: ServiceError) -> Response:
        return error_response(error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        if error.response is not None:  # abort(response), e.g. our validation-error callback
            return error.response  # type: ignore[return-value]
        status = error.code or 500
        code = _HTTP_CODES.get(status, "invalid_request" if status < 500 else "internal_error")
        response = jsonify(envelope(code, error.description or error.name))
        response.status_code = status
        if status == 405 and error.get_headers():
            for name, value in error.get_headers():
                if name.lower() == "allow":
                    response.headers["Allow"] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unexpected error")
        response = jsonify(envelope("internal_error", "The service could not complete the request."))
        response.status_code = 500
        return response


# -- access reviews (Admin.start_review, decide_review_item, close_review)
class ReviewUnknown(ServiceError):
    """No such review in this CPAS (a review of another CPAS is unknown here too)."""

    code, status = "review_unknown", 404

    def __init__(self, review_id: int, cpas: str) -> None:
        self.review_id, self.cpas = review_id, cpas
        super().__init__(f"review {review_id} does not exist in CPAS {cpas}")


class ReviewItemUnknown(ServiceError):
    """The user was not frozen in the review (not active when it started, or never seen)."""

    code, status = "review_item_unknown", 404

    def __init__(self, review_id: int, user: str) -> None:
        self.review_id, self.user = review_id, user
        super().__init__(f"user {user} is not part of review {review_id}")


class ReviewClosed(ServiceError):
    code, status = "review_closed", 409

    def __init__(self, review_id: int) -> None:
        self.review_id = review_id
        super().__init__(f"review {review_id} is closed: it can no longer change", {"review": review_id})


class ReviewOpen(ServiceError):
    """Another review of the CPAS is still open."""

    code, status = "review_open", 409

    def __init__(self, review_id: int) -> None:
        self.review_id = review_id
        super().__init__(f"review {review_id} of this CPAS is still open: close it first", {"review": review_id})


class ReviewUndecided(ServiceError):
    code, status = "review_undecided", 409

    def __init__(self, review_id: int, undecided: int) -> None:
        self.review_id, self.undecided = review_id, undecided
        super().__init__(f"review {review_id} cannot be closed: {undecided} user(s) still to decide",
                         {"undecided": undecided})


class ReviewItemDecided(ServiceError):
    code, status = "review_item_decided", 409

    def __init__(self, review_id: int, user: str, decision: str) -> None:
        self.review_id, self.user, self.decision = review_id, user, decision
        super().__init__(f"user {user} of review {review_id} was already decided ({decision}): decisions are final",
                         {"decision": decision})


class ReviewDateInvalid(InvalidRequest):
    """``problem``: "due" (a due date before today), "until" (keep_until without a date after today),
    "until_unexpected" (an until date with another decision), "range" (a date too far away: ``field`` says
    which). ``today``: the Brussels date the check used."""

    TEXT = {
        "due": "the due date of a review cannot be in the past",
        "until": "keep_until needs an until date after today",
        "until_unexpected": "only keep_until takes an until date",
        "range": "the date is out of range",
    }

    def __init__(self, problem: str, field: str, today: str) -> None:
        self.problem, self.field = problem, field
        super().__init__(self.TEXT[problem], {"field": field, "today": today})


class ReviewDecisionUnknown(InvalidRequest):
    def __init__(self, decision: str) -> None:
        self.decision = decision
        super().__init__("decision must be one of keep, revoke, keep_until", {"decision": decision})
