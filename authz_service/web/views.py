"""Routes of the admin web UI (blueprint ``web`` under ``/ui``). Thin: a form is parsed, handed to one
use case (``change``: ``Service.change`` -> ``Admin`` -> ``Store``, the engine rebuilt after commit),
then flash and 303 redirect (post/redirect/get), or the form again with the refusal in the reader's
language. A profile save, an assignment, a deletion and a deactivation first show what they would do
("Aperçu des changements": the same use case run and rolled back, ``preview``); the form's fields come back
as hidden inputs, and the change is made when they come back with ``confirm`` (a direct post with
``confirm`` makes it at once). A page reads what it shows through ``reads`` in one read transaction
(``cpas_page``). Every page and form of a CPAS checks first that the signed-in identity may see or change
it (403 otherwise, before any I/O); errors of the use cases become messages on the page, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_limiter import RateLimitExceeded
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from .. import reads
from ..admin import Admin
from ..errors import HistoryUnavailable, InvalidTerm, ServiceError, StaleVersion
from ..service import Previewed, Service
from ..store import Store
from ..terms import Term, brussels_day
from . import holders, trail
from .auth import (
    LANGS,
    Identity,
    check_password,
    current_identity,
    end_session,
    safe_next,
    session_key_ready,
    start_session,
    web_settings,
)
from .forms import (
    FROM_FIELD,
    UNTIL_FIELD,
    AccessAtForm,
    ActionForm,
    AuditFilterForm,
    LoginForm,
    ProfileForm,
    TermFields,
    assignment_terms,
)
from .i18n import SESSION_LANG
from .messages import action_label, error_message
from .periods import TermNote, first_day, last_day, term_note
from .preview import ImpactView, impact_view
from .tree import (
    Draft,
    add_prerequisites,
    apply,
    apply_block_checkboxes,
    build_tree,
    full_groups,
    missing_prerequisites,
    prerequisite_map,
    prerequisite_reasons,
    templates_data,
)

T = TypeVar("T")
P = ParamSpec("P")
bp = Blueprint("web", __name__, url_prefix="/ui", template_folder="templates", static_folder="static")
csrf = CSRFProtect()
PUBLIC = frozenset({"web.login", "web.static", "web.set_language"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSV_LIMIT = 100_000
SESSION_CPAS = "cpas"
ENDING_DAYS = 30  # the list of assignments ending soon looks this many days ahead


# -- helpers ---------------------------------------------------------------------------------------------
def svc() -> Service:
    return current_app.extensions["authz"]


def identity() -> Identity:
    found: Identity | None = g.get("identity")
    if found is None:  # the before_request hook redirects anonymous requests; never reached
        abort(401)
    return found


def lang() -> str:
    locale = get_locale()
    return locale.language if locale is not None and locale.language in LANGS else "fr"


def may(cpas: str, *, manage: bool = True) -> None:
    """403 unless the signed-in identity may manage (or, ``manage=False``, see) the CPAS. No I/O."""
    who = identity()
    if not (who.may_manage(cpas) if manage else who.may_view(cpas)):
        abort(403)


def cpas_page(cpas: str, fn: Callable[[Store], T], *, manage: bool = True) -> tuple[reads.CpasInfo, T]:
    """What a page of a CPAS shows: the permission checked, then the CPAS and the page's data read in one
    read transaction (a page is never half before, half after a change)."""
    may(cpas, manage=manage)
    reader = lang()
    info, data = svc().read(lambda store: (reads.cpas_info(store, cpas, reader), fn(store)))
    g.cpas = info
    session[SESSION_CPAS] = cpas
    return info, data


def change(use_case: Callable[Concatenate[Admin, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
    """One use case in one transaction, as the signed-in identity: what every form of the UI does."""
    return svc().change(identity().actor, use_case, *args, **kwargs).value


def preview(use_case: Callable[Concatenate[Admin, P], T], *args: P.args, **kwargs: P.kwargs) -> Previewed[T]:
    """The dry run of ``change``: what the use case would do, nothing changed."""
    return svc().preview(identity().actor, use_case, *args, **kwargs)


def confirmed() -> bool:
    """The form comes back from its preview step (or from a client that skips it): make the change."""
    return bool(request.form.get("confirm"))


def impact_or_none(use_case: Callable[Concatenate[Admin, P], T], *args: P.args,
                   **kwargs: P.kwargs) -> ImpactView | None:
    """What a change would do, for its confirmation page; None when it would be refused (the refusal is
    told, in the manual's words, once the change is confirmed)."""
    try:
        return impact_view(svc().catalog, preview(use_case, *args, **kwargs).impact, lang())
    except ServiceError:
        return None


def preview_page(cpas: str, heading: str, previewed: Previewed[Any], fields: list[tuple[str, str]], *,
                 assigned: list[tuple[str, Term | None]] | None = None) -> str:
    """The preview step: what the change would do, the form's ``fields`` kept as hidden inputs, a button back
    to the form (``action=edit``: the form again, as it was sent) and one that confirms. ``assigned``: for an
    assignment, the user's profiles after it, each with its term."""
    info, _nothing = cpas_page(cpas, lambda store: None)
    return render_template("web/preview.html", info=info, form=ActionForm(), heading=heading, fields=fields,
                           impact=impact_view(svc().catalog, previewed.impact, lang()), assigned=assigned)


def see_other(endpoint: str, **values: Any) -> Response:
    return redirect(url_for(endpoint, **values), code=303)  # type: ignore[return-value]


def back_to_list(cpas: str) -> Response:
    target = safe_next(request.values.get("back"), url_for("web.home", cpas=cpas))
    return redirect(target, code=303)  # type: ignore[return-value]


def int_arg(name: str, default: int = 1, high: int = 1_000_000) -> int:
    value = request.args.get(name, default, type=int)
    return min(max(value or default, 1), high)


# -- request hooks and errors ----------------------------------------------------------------------------
@bp.before_request
def _before() -> Response | None:
    if request.endpoint == "web.static":
        return None
    if not session_key_ready(current_app):  # never a key of this process alone: wait for the shared one
        body, status = _error_page(503, _("Service unavailable"), _(
            "The service cannot reach its database at the moment. Please try again in a moment."))
        return Response(body, status, {"Retry-After": "5"}, mimetype="text/html")
    g.identity = current_identity()  # first: the refusals below speak the identity's language
    if g.identity is None and request.endpoint not in PUBLIC:
        if g.get("session_ended"):
            flash(_("Your session has ended. Please sign in again."), "error")
        target = request.full_path.rstrip("?") if request.method == "GET" else url_for("web.index")
        return see_other("web.login", next=target)
    if request.method not in SAFE_METHODS:
        csrf.protect()
    return None


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    )
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    response.vary.add("Cookie")
    return response


@bp.app_context_processor
def _context() -> dict[str, Any]:
    return {"identity": g.get("identity"), "current_cpas": g.get("cpas"), "lang": lang, "langs": LANGS,
            "session_ready": bool(current_app.secret_key)}


@bp.app_template_global("term_note")
def _term_note(term: Term | None) -> TermNote | None:
    """What a page says of an assignment's term ("jusqu'au 31/01/2027 inclus", "terminée le ..."), as of the
    service's instant (one per request)."""
    if "now" not in g:
        g.now = svc().now()
    return term_note(term, g.now)


@bp.app_template_global()
def page_url(number: int) -> str:
    """This page's URL with ``page=number`` and its other query arguments kept."""
    args: dict[str, Any] = {**(request.view_args or {}), **request.args.to_dict(), "page": number}
    return url_for(str(request.endpoint), **args)


def _error_page(status: int, title: str, message: str) -> tuple[str, int]:
    return render_template("web/error.html", title=title, message=message, status=status), status


@bp.errorhandler(CSRFError)
def _csrf_error(err: CSRFError) -> tuple[str, int]:
    return _error_page(400, _("Form expired"), _(
        "The form was refused because its security token is missing or has expired. "
        "Go back, reload the page and try again."))


@bp.errorhandler(RateLimitExceeded)
def _throttled(err: RateLimitExceeded) -> tuple[str, int]:
    """Too many failed sign-ins from this address or for this username (``throttle``)."""
    current_app.logger.warning("web login throttled for %r from %s", request.form.get("username", "")[:128],
                               request.remote_addr)
    form = LoginForm()
    form.password.errors = [_("Too many failed sign-in attempts. Wait a quarter of an hour before trying again.")]
    return render_template("web/login.html", form=form, sso=web_settings().sso_enabled), 429


@bp.errorhandler(ServiceError)
def _service_error(err: ServiceError) -> tuple[str, int]:
    return _error_page(err.status, _("Cannot continue"), error_message(err))


@bp.errorhandler(HTTPException)
def _http_error(err: HTTPException) -> tuple[str, int] | Response:
    status = err.code or 500
    if status == 403:
        return _error_page(403, _("Access refused"), _("You may not see or change this page of this CPAS."))
    if status == 404:
        return _error_page(404, _("Page not found"), _("This page does not exist."))
    if status == 413:
        return _error_page(413, _("Too much data"), _("The form sent too much data."))
    if status < 500:
        return _error_page(status, _("Request refused"), _("The request is not valid."))
    return _error_page(status, _("Error"), _("The service could not complete the request."))


@bp.errorhandler(Exception)
def _unexpected(err: Exception) -> tuple[str, int]:
    current_app.logger.exception("unexpected error in the web UI")
    return _error_page(500, _("Error"), _("The service could not complete the request."))


# -- login, logout, language -------------------------------------------------------------------------------
@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    if request.method == "GET":
        if g.identity is not None:
            return see_other("web.index")
        form.next.data = safe_next(request.args.get("next"), "")
        return render_template("web/login.html", form=form, sso=web_settings().sso_enabled)
    if form.validate():
        account = check_password(form.username.data or "", form.password.data or "")
        if account is not None:
            start_session(account)
            return redirect(safe_next(form.next.data, url_for("web.index")), code=303)
        current_app.logger.warning("web login refused for %r from %s", form.username.data, request.remote_addr)
        # one answer for every refusal: unknown username, wrong password, inactive or locked account
        form.password.errors = [_("Wrong username or password. After too many failed attempts, sign-in is "
                                  "refused for a quarter of an hour.")]
    return render_template("web/login.html", form=form, sso=web_settings().sso_enabled), 401


@bp.post("/logout")
def logout() -> Response:
    """Sign out: this browser's session and every other session of the account end."""
    who = identity()
    if who.kind == "local":
        change(Admin.end_account_sessions, who.user)
    end_session()
    flash(_("You are signed out."), "success")
    return see_other("web.login")


@bp.post("/lang")
def set_language() -> Response:
    chosen = request.form.get("lang", "")
    if chosen not in LANGS:
        abort(400)
    session[SESSION_LANG] = chosen
    who = g.get("identity")
    if who is not None and who.kind == "local":  # the account keeps the choice for the next login
        change(Admin.set_account_language, who.user, chosen)
    return redirect(safe_next(request.form.get("next"), url_for("web.index")), code=303)  # type: ignore[return-value]


# -- choosing a CPAS -------------------------------------------------------------------------------------
@bp.get("/")
def index() -> Response:
    who = identity()
    remembered = session.get(SESSION_CPAS)
    target: str | None = None
    if isinstance(remembered, str) and who.may_view(remembered):
        target = remembered
    elif not who.operator and len(who.cpas) == 1:
        target = next(iter(who.cpas))
    if target is None:
        return see_other("web.choose_cpas")
    return see_other("web.home" if who.may_manage(target) else "web.my_access", cpas=target)


@bp.get("/cpas")
def choose_cpas() -> str:
    who = identity()
    q = request.args.get("q", "").strip()[:100]
    reader = lang()
    choices = svc().read(lambda s: reads.cpas_choices(s, reader, None if who.operator else who.cpas, q))
    return render_template("web/choose_cpas.html", choices=choices, q=q)


# -- "Gestion des accès" -----------------------------------------------------------------------------------
@bp.get("/cpas/<cpas>/")
def home(cpas: str) -> str:
    q = request.args.get("q", "").strip()[:100]
    page = int_arg("page")
    per_page = web_settings().per_page
    reader = lang()
    from .reviews import home_review_status  # (reviews imports this module: its routes join the blueprint)

    now = svc().now()
    info, (profiles, users, inactive, review_status, ending_soon) = cpas_page(cpas, lambda store: (
        reads.profile_rows(store, cpas, reader),
        reads.users_page(store, cpas, reader, active=True, page=page, per_page=per_page, q=q),
        reads.inactive_count(store, cpas),
        home_review_status(store, cpas),
        len(reads.ending_assignments(store, cpas, now, ENDING_DAYS, reader)),
    ))
    return render_template("web/home.html", info=info, profiles=profiles, users=users, q=q, inactive=inactive,
                           form=ActionForm(), review_status=review_status, ending_soon=ending_soon,
                           ending_days=ENDING_DAYS)


@bp.get("/cpas/<cpas>/users/inactive")
def inactive_users(cpas: str) -> str:
    q = request.args.get("q", "").strip()[:100]
    page = int_arg("page")
    per_page = web_settings().per_page
    reader = lang()
    info, users = cpas_page(cpas, lambda s: reads.users_page(s, cpas, reader, active=False, page=page,
                                                             per_page=per_page, q=q))
    return render_template("web/inactive.html", info=info, users=users, q=q, form=ActionForm())


# -- profiles --------------------------------------------------------------------------------------------
def _draft_from_request(form: ProfileForm) -> Draft:
    catalog = svc().catalog
    functions = {c for c in request.form.getlist("functions") if c}
    functions = apply_block_checkboxes(catalog, functions, set(request.form.getlist("groups")),
                                       set(request.form.getlist("groups_was")))
    includes = set()
    for value in request.form.getlist("includes"):
        try:
            includes.add(int(value))
        except ValueError:
            abort(400)
    version = None
    if form.version.data:
        try:
            version = int(form.version.data)
        except ValueError:
            abort(400)
    return Draft(form.description_fr.data or "", form.description_nl.data or "", functions, includes, version)


def _profile_page(
    cpas: str,
    profile_id: int | None,
    form: ProfileForm,
    draft: Draft | None = None,
    *,
    status: int = 200,
    error: str | None = None,
    confirm_missing: bool = False,
) -> tuple[str, int]:
    """The profile form (``draft`` None: as the store has the profile, or empty for a new one)."""
    catalog = svc().catalog
    reader = lang()
    info, (rows, profile) = cpas_page(cpas, lambda store: (
        reads.profile_rows(store, cpas, reader),
        reads.profile_detail(store, catalog, cpas, profile_id, reader) if profile_id is not None else None,
    ))
    if draft is None:
        draft = Draft() if profile is None else Draft(
            profile.description_fr or "", profile.description_nl or "", set(profile.functions),
            set(profile.includes), profile.version)
    form.description_fr.data = draft.description_fr
    form.description_nl.data = draft.description_nl
    form.version.data = str(draft.version) if draft.version is not None else ""
    builtin = profile is not None and profile.builtin
    templates = [(t.code, t.name(info.region).get(reader)) for t in catalog.templates]
    selected = set(catalog.selectable) if builtin else draft.functions
    return render_template(
        "web/profile_form.html",
        info=info,
        form=form,
        profile=profile,
        builtin=builtin,
        tree=build_tree(catalog, reader, selected),
        groups_was=full_groups(catalog, selected),
        selected_count=len(selected & set(catalog.selectable)),
        total_count=len(catalog.selectable),
        templates=templates,
        others=[p for p in rows if p.id != profile_id],
        includes=draft.includes,
        missing=[] if builtin else missing_prerequisites(catalog, reader, draft.functions),
        confirm_missing=confirm_missing,
        error=error,
        js_data=json.dumps({
            "templates": templates_data(catalog),
            "prerequisites": prerequisite_map(catalog),
            "reasons": prerequisite_reasons(catalog, reader),
            "groups": {code: list(catalog.group_functions(code)) for code in catalog.groups},
        }).replace("</", "<\\/"),
    ), status


def _profile_form(cpas: str, profile_id: int | None) -> Any:
    """GET: the form. POST: parse it, then either show it again (a template applied, prerequisites to
    confirm, back from the preview, a refusal), or show what saving it would do (the preview step), or,
    confirmed, save it with one use case and go back to the list (the built-in profile's form saves its
    descriptions only: the use case knows which profile that is)."""
    form = ProfileForm()
    if request.method == "GET":
        return _profile_page(cpas, profile_id, form)
    may(cpas)
    catalog = svc().catalog
    draft = _draft_from_request(form)
    action = request.form.get("action", "save")
    if action == "edit":  # back from the preview: the form as it was sent, not saved
        return _profile_page(cpas, profile_id, form, draft)
    if action not in ("save", "save_anyway", "fix_and_save"):
        if apply(catalog, draft, action) is not None:
            abort(400)
        return _profile_page(cpas, profile_id, form, draft)
    if action == "fix_and_save":
        draft.functions = add_prerequisites(catalog, draft.functions)
    if not form.validate():
        return _profile_page(cpas, profile_id, form, draft, status=400)
    # (the built-in profile's form sends no function: its boxes are disabled, so nothing is missing; coming
    # back confirmed, the choice was made before the preview)
    if action == "save" and not confirmed() and missing_prerequisites(catalog, lang(), draft.functions):
        return _profile_page(cpas, profile_id, form, draft, confirm_missing=True)
    if profile_id is not None and draft.version is None:
        abort(400)
    functions = draft.ordered_functions(catalog)
    fr, nl = draft.description_fr or None, draft.description_nl or None
    includes = sorted(draft.includes)
    try:
        if not confirmed():
            if profile_id is None:
                previewed = preview(Admin.create_profile, cpas, description_fr=fr, description_nl=nl,
                                    functions=functions, includes=includes)
            else:
                assert draft.version is not None
                previewed = preview(Admin.update_profile, cpas, profile_id, version=draft.version, description_fr=fr,
                                    description_nl=nl, functions=functions, includes=includes,
                                    builtin_descriptions_only=True)
        elif profile_id is None:
            saved = change(Admin.create_profile, cpas, description_fr=fr, description_nl=nl, functions=functions,
                           includes=includes)
        else:
            assert draft.version is not None
            saved = change(Admin.update_profile, cpas, profile_id, version=draft.version, description_fr=fr,
                           description_nl=nl, functions=functions, includes=includes,
                           builtin_descriptions_only=True)
    except StaleVersion as err:
        draft.version = err.current_version  # saving again replaces the other change
        return _profile_page(cpas, profile_id, form, draft, status=409, error=error_message(err))
    except ServiceError as err:
        return _profile_page(cpas, profile_id, form, draft, status=err.status, error=error_message(err))
    if not confirmed():
        name = previewed.value.label(lang())
        heading = (_("Create the profile “%(name)s”", name=name) if profile_id is None
                   else _("Save the profile “%(name)s”", name=name))
        fields = [("description_fr", draft.description_fr), ("description_nl", draft.description_nl),
                  ("version", str(draft.version) if draft.version is not None else ""),
                  *(("functions", code) for code in functions), *(("includes", str(pid)) for pid in includes)]
        return preview_page(cpas, heading, previewed, fields)
    if profile_id is None:
        flash(_("The profile “%(name)s” was created.", name=saved.label(lang())), "success")
    else:
        flash(_("The profile “%(name)s” was saved.", name=saved.label(lang())), "success")
    return see_other("web.home", cpas=cpas)


@bp.route("/cpas/<cpas>/profiles/new", methods=["GET", "POST"])
def profile_new(cpas: str) -> Any:
    return _profile_form(cpas, None)


@bp.route("/cpas/<cpas>/profiles/<int:profile_id>", methods=["GET", "POST"])
def profile_edit(cpas: str, profile_id: int) -> Any:
    return _profile_form(cpas, profile_id)


@bp.get("/cpas/<cpas>/profiles/<int:profile_id>/print")
def profile_print(cpas: str, profile_id: int) -> str:
    catalog = svc().catalog
    reader = lang()
    info, (printed, terms) = cpas_page(cpas, lambda s: (reads.profile_print(s, catalog, cpas, profile_id, reader),
                                                        reads.profile_terms(s, cpas, profile_id)))
    return render_template("web/profile_print.html", info=info, profile=printed.profile, users=printed.profile.users,
                           terms=terms,
                           included=printed.included, tree=build_tree(catalog, reader, printed.grants),
                           count=len(printed.grants), own=len(printed.profile.functions))


@bp.route("/cpas/<cpas>/profiles/<int:profile_id>/delete", methods=["GET", "POST"])
def profile_delete(cpas: str, profile_id: int) -> Any:
    """The confirmation, with what the deletion would do (also the answer to a POST without ``confirm``);
    confirmed, the deletion."""
    if not confirmed():
        reader = lang()
        info, profile = cpas_page(cpas, lambda s: reads.profile_detail(s, svc().catalog, cpas, profile_id, reader))
        impact = None if profile.builtin else impact_or_none(Admin.delete_profile, cpas, profile_id)
        return render_template("web/confirm.html", info=info, form=ActionForm(), kind="delete",
                               subject=profile.description, builtin=profile.builtin,
                               impact=impact), (409 if profile.builtin else 200)
    may(cpas)
    try:
        gone = change(Admin.delete_profile, cpas, profile_id)
    except ServiceError as err:
        flash(error_message(err), "error")
        return see_other("web.home", cpas=cpas)
    flash(_("The profile “%(name)s” was deleted.", name=gone.label(lang())), "success")
    return see_other("web.home", cpas=cpas)


# -- users -----------------------------------------------------------------------------------------------
@bp.route("/cpas/<cpas>/users/<user>/profiles", methods=["GET", "POST"])
def assign(cpas: str, user: str) -> Any:
    """GET: the profiles to tick, each with its optional dates (from, until and including). POST: what the
    assignment would do (the preview step), the form again (``action=edit``, back from the preview, or dates
    refused, with everything sent kept), or, confirmed, the assignment."""
    if request.method == "GET":
        return _assign_page(cpas, user, None)
    may(cpas)
    try:
        ids = sorted({int(v) for v in request.form.getlist("profiles")})
    except ValueError:
        abort(400)
    try:
        held = svc().read(lambda s: reads.user_detail(s, cpas, user).terms)
        fields, items, valid = assignment_terms(request.form, ids, brussels_day(svc().now()), held)
        if request.form.get("action") == "edit":
            return _assign_page(cpas, user, set(ids), fields)
        if not valid:
            return _assign_page(cpas, user, set(ids), fields), 400
        if not confirmed():
            previewed = preview(Admin.set_user_profiles, cpas, user, items)
            back = safe_next(request.form.get("back"), url_for("web.home", cpas=cpas))
            dates = [(f"{prefix}{pid}", value) for pid in ids
                     for prefix, value in ((FROM_FIELD, fields[pid].valid_from), (UNTIL_FIELD, fields[pid].valid_until))
                     if value]
            hidden = [*(("profiles", str(pid)) for pid in ids), *dates, ("back", back)]
            heading = _("Assign profiles to %(name)s", name=previewed.value.name or previewed.value.user)
            after = previewed.value
            return preview_page(cpas, heading, previewed, hidden,
                                assigned=[(p.description, after.terms.get(p.id)) for p in
                                          sorted(after.profiles, key=lambda p: p.description.casefold())])
        saved = change(Admin.set_user_profiles, cpas, user, items)
    except InvalidTerm:  # the form refuses it first (an end before the start): never reached from the page
        flash(_("The end date is before the start date."), "error")
        return back_to_list(cpas)
    except ServiceError as err:
        flash(error_message(err), "error")
        return back_to_list(cpas)
    flash(_("The profiles of %(name)s were saved.", name=saved.name or saved.user), "success")
    return back_to_list(cpas)


def _assign_page(cpas: str, user: str, ticked: set[int] | None, fields: dict[int, TermFields] | None = None) -> str:
    """The assignment form; ``ticked`` None: the profiles the user holds, with the dates of their terms."""
    reader = lang()
    info, (row, profiles) = cpas_page(cpas, lambda s: (reads.user_detail(s, cpas, user, reader),
                                                       reads.profile_rows(s, cpas, reader)))
    if fields is None:
        fields = {pid: TermFields(_iso(first_day(term)), _iso(last_day(term))) for pid, term in row.terms.items()}
    return render_template("web/assign.html", info=info, form=ActionForm(), user=row, profiles=profiles,
                           assigned={p.id for p in row.profiles} if ticked is None else ticked,
                           unsaved=ticked is not None, dates=fields, held=row.terms,
                           errors=any(f.errors for f in fields.values()),
                           back=safe_next(request.values.get("back"), url_for("web.home", cpas=cpas)))


def _iso(day: date | None) -> str:
    return "" if day is None else day.isoformat()


@bp.get("/cpas/<cpas>/assignments/ending")
def ending(cpas: str) -> str:
    """The active users' assignments whose term ends within ENDING_DAYS days, soonest first, each with a link
    to its user's "Affecter les profils"."""
    reader = lang()
    now = svc().now()
    info, rows = cpas_page(cpas, lambda s: reads.ending_assignments(s, cpas, now, ENDING_DAYS, reader))
    return render_template("web/ending.html", info=info, days=ENDING_DAYS,
                           rows=[(r, last_day(Term.of(None, r.valid_until))) for r in rows])


def _access_page(cpas: str, user_id: str, *, mine: bool) -> str:
    """A user's access as the engine decides it (``mine``: the signed-in user's own, "Mes accès")."""
    may(cpas, manage=not mine)
    catalog = svc().catalog
    reader = lang()
    policy = svc().policy(cpas)
    view = policy.view(user_id)
    terms = policy.terms_of(user_id)  # the terms of its assignments, in force or not

    def run(store: Store) -> tuple[str, list[reads.ProfileAccess]]:
        name = identity().name if mine else (lambda u: u.name or u.user)(reads.user_detail(store, cpas, user_id))
        return name, reads.profiles_access(store, cpas, view.profiles, reader)

    info, (name, profiles) = cpas_page(cpas, run, manage=not mine)
    sections = [(p, build_tree(catalog, reader, p.functions, prune=True, effective=view.functions)) for p in profiles]
    effective = len({c for c in view.functions if c in catalog and catalog.functions[c].selectable})
    # assigned but out of their term now (ended, or not begun): they grant nothing, so have no section
    dormant = sorted(((policy.description(pid, reader), term) for pid, term in terms.items()
                      if pid not in view.profiles and view.active), key=lambda d: d[0].casefold())
    return render_template("web/access.html", info=info, name=name, sections=sections, mine=mine,
                           effective=effective, active=view.active or not view.known, known=view.known,
                           terms=terms, dormant=dormant)


@bp.get("/cpas/<cpas>/users/<user>/print")
def user_print(cpas: str, user: str) -> str:
    return _access_page(cpas, user, mine=False)


@bp.route("/cpas/<cpas>/users/<user>/deactivate", methods=["GET", "POST"])
def deactivate(cpas: str, user: str) -> Any:
    """The confirmation, with what the deactivation would do (also the answer to a POST without
    ``confirm``); confirmed, the deactivation."""
    if not confirmed():
        info, row = cpas_page(cpas, lambda s: reads.user_detail(s, cpas, user))
        return render_template("web/confirm.html", info=info, form=ActionForm(), kind="deactivate",
                               subject=row.name or row.user, impact=impact_or_none(Admin.deactivate_user, cpas, user),
                               back=safe_next(request.values.get("back"), url_for("web.home", cpas=cpas)))
    may(cpas)
    try:
        row = change(Admin.deactivate_user, cpas, user)
    except ServiceError as err:
        flash(error_message(err), "error")
        return back_to_list(cpas)
    flash(_("%(name)s was deactivated: every profile was removed and the user is now in the list of "
            "inactive users.", name=row.name or row.user), "success")
    return back_to_list(cpas)


@bp.post("/cpas/<cpas>/users/<user>/reactivate")
def reactivate(cpas: str, user: str) -> Response:
    """Back among the active users, with no profile; then on to choosing their profiles."""
    may(cpas)
    try:
        row = change(Admin.reactivate_user, cpas, user)
    except ServiceError as err:
        flash(error_message(err), "error")
        return see_other("web.inactive_users", cpas=cpas)
    flash(_("%(name)s was reactivated, with no profile: choose their profiles now.", name=row.name or row.user),
          "success")
    # on to "Affecter les profils", as a reactivated user has none; back to the list of users after
    return see_other("web.assign", cpas=cpas, user=user, back=url_for("web.home", cpas=cpas))


@bp.get("/<path:_anything>")
def not_found(_anything: str) -> Response:
    """Any other address under /ui: an HTML page, not the JSON API's envelope."""
    abort(404)


# -- "Mes accès" ---------------------------------------------------------------------------------------------
@bp.get("/me")
def my_access_current() -> Response:
    return see_other("web.index")


@bp.get("/cpas/<cpas>/me")
def my_access(cpas: str) -> str:
    return _access_page(cpas, identity().user, mine=True)


# -- Admin-Logs --------------------------------------------------------------------------------------------
def _audit_filter() -> tuple[AuditFilterForm, reads.AuditFilter]:
    form = AuditFilterForm(request.args)
    if not form.validate():
        return form, reads.AuditFilter()
    return form, reads.AuditFilter(form.date_from.data, form.date_to.data, form.actor.data or "",
                                   form.action.data or "")


# -- who can use a function: now, and at a past instant ---------------------------------------------------------
def _function_label(function: str) -> str:
    catalog = svc().catalog
    if function not in catalog or not catalog.functions[function].selectable:
        abort(404)
    return catalog.functions[function].label.get(lang())


@bp.get("/cpas/<cpas>/functions/<function>/users")
def function_users(cpas: str, function: str) -> str:
    """"Qui peut utiliser cette fonction ?": every user the engine allows it now, with the granting profiles."""
    may(cpas)
    label = _function_label(function)
    policy = svc().policy(cpas)
    info, names = cpas_page(cpas, lambda store: reads.user_names(store, cpas))
    rows = holders.holders(policy, function, names, lang())
    return render_template("web/function_users.html", info=info, function=function, label=label, rows=rows,
                           back=safe_next(request.args.get("back"), url_for("web.home", cpas=cpas)))


def _access_at_query(cpas: str) -> tuple[AccessAtForm, str | None, datetime | None]:
    """The form of "Qui avait accès ?" as asked (GET), and the function and instant it names when valid."""
    form = AccessAtForm(request.args)
    catalog = svc().catalog
    form.function.choices = [("", ""), *sorted(
        ((code, fn.label.get(lang())) for code, fn in catalog.functions.items() if fn.selectable),
        key=lambda c: c[1].casefold())]
    if not request.args or not form.validate():
        return form, None, None
    try:
        at = holders.instant(form.day.data, form.moment.data, reads.local_zone()).astimezone(UTC)
    except OverflowError:  # the first or last day of year 1 or 9999 in Brussels, out of UTC's range
        form.day.errors = [*form.day.errors, "range"]
        return form, None, None
    return form, form.function.data, at.astimezone(reads.local_zone())


def _access_at(cpas: str) -> tuple[reads.CpasInfo, AccessAtForm, dict[str, Any]]:
    may(cpas)
    form, function, at = _access_at_query(cpas)
    found: dict[str, Any] = {"function": function, "at": at, "rows": None, "since": None}
    policy = None
    if function is not None and at is not None:
        try:
            policy = svc().policy_at(cpas, at)
        except HistoryUnavailable as err:
            since = (err.details or {}).get("history_since")
            found["since"] = (datetime.fromisoformat(since.replace("Z", "+00:00")).astimezone(reads.local_zone())
                              if since else "")
    info, names = cpas_page(cpas, lambda store: reads.user_names(store, cpas))
    if policy is not None and function is not None:
        found["rows"] = holders.holders(policy, function, names, lang())
        found["version"] = policy.version
        found["label"] = _function_label(function)
    return info, form, found


@bp.get("/cpas/<cpas>/access-at")
def access_at(cpas: str) -> str:
    """"Qui avait accès ?" (the data-protection officer's page): a function, a day and a time in Brussels ->
    the users allowed it then and the profiles that granted it, from the policy's history."""
    info, form, found = _access_at(cpas)
    query = {k: v for k, v in request.args.items() if v}
    return render_template("web/access_at.html", info=info, form=form, query=query, **found)


@bp.get("/cpas/<cpas>/access-at.csv")
def access_at_csv(cpas: str) -> Response:
    """The same answer for a spreadsheet (semicolons, UTF-8 with a byte-order mark, Brussels time)."""
    _info, _form, found = _access_at(cpas)
    if found["rows"] is None:
        abort(400)
    response = Response(stream_with_context(holders.csv_lines(found["rows"], found["label"], found["at"])),
                        mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    stamp = found["at"].strftime("%Y%m%d-%H%M")
    response.headers["Content-Disposition"] = f'attachment; filename="access-{cpas}-{found["function"]}-{stamp}.csv"'
    return response


CHAIN_WATCH = "authz_audit_chain_watch"  # app.extensions: this process's reads.ChainWatch


def _chain_watch() -> reads.ChainWatch:
    found: reads.ChainWatch | None = current_app.extensions.get(CHAIN_WATCH)
    return found if found is not None else current_app.extensions.setdefault(CHAIN_WATCH, reads.ChainWatch())


@bp.get("/cpas/<cpas>/audit")
def audit(cpas: str) -> str:
    """The CPAS's trail, with a warning when its chain has a broken link (checked on every view, mostly only
    the rows added since the last: ``reads.ChainWatch``), which also sets ``authz_audit_chain_broken``."""
    form, flt = _audit_filter()
    page = int_arg("page")
    reader = lang()
    watch = _chain_watch()
    info, (entries, (actions, actors), profiles, chain) = cpas_page(cpas, lambda store: (
        reads.audit_page(store, cpas, flt, page=page, per_page=50), reads.audit_filter_values(store, cpas),
        reads.profile_rows(store, cpas, reader), watch.check(store, cpas)))
    svc().metrics.audit_chain_checked(cpas, chain.broken is not None)
    rows = trail.entries(entries.items, svc().catalog, {p.id: p.description for p in profiles}, reader,
                         reads.local_zone())
    query = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template("web/audit.html", info=info, form=form, entries=entries, rows=rows,
                           actions=[(a, action_label(a)) for a in actions], actors=actors, query=query,
                           chain_broken=chain.broken)


@bp.get("/cpas/<cpas>/audit.csv")
def audit_csv(cpas: str) -> Response:
    """The filtered trail for a spreadsheet (``trail.csv_lines``), newest first, at most CSV_LIMIT rows."""
    _form, flt = _audit_filter()
    reader = lang()
    _info, (found, profiles) = cpas_page(cpas, lambda s: (reads.audit_rows(s, cpas, flt, limit=CSV_LIMIT),
                                                          reads.profile_rows(s, cpas, reader)))
    rows = trail.entries(found, svc().catalog, {p.id: p.description for p in profiles}, reader, reads.local_zone())
    response = Response(stream_with_context(trail.csv_lines(rows)), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="admin-logs-{cpas}.csv"'
    return response
