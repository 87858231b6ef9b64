"""Routes of the admin web UI (blueprint ``web`` under ``/ui``). Thin: parse the form, call one use
case inside ``service.admin(actor, cpas)``, flash, 303 redirect (post/redirect/get); reads go through
``queries`` in one read transaction. Every page of a CPAS checks first that the signed-in identity
may see it (403 otherwise); errors of the use cases become messages on the page, never a 500.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

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

from ..admin import profile_description, require_user
from ..errors import ServiceError, StaleVersion
from ..models import iso
from ..service import Service
from ..store import Store
from . import queries
from .auth import (
    LANGS,
    Identity,
    check_password,
    current_identity,
    end_account_sessions,
    end_session,
    safe_next,
    session_key_ready,
    start_session,
    web_settings,
)
from .forms import ActionForm, AuditFilterForm, LoginForm, ProfileForm
from .i18n import SESSION_LANG
from .messages import action_label, error_message
from .tree import (
    Draft,
    add_prerequisites,
    apply,
    apply_block_checkboxes,
    build_tree,
    full_groups,
    missing_prerequisites,
    prerequisite_map,
    templates_data,
)

T = TypeVar("T")
bp = Blueprint("web", __name__, url_prefix="/ui", template_folder="templates", static_folder="static")
csrf = CSRFProtect()
PUBLIC = frozenset({"web.login", "web.static", "web.set_language"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSV_LIMIT = 100_000
SESSION_CPAS = "cpas"


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


def read(fn: Callable[[Store], T]) -> T:
    return svc().read(fn)


def require_manager(cpas: str) -> queries.CpasInfo:
    if not identity().may_manage(cpas):
        abort(403)
    return _enter_cpas(cpas)


def require_member(cpas: str) -> queries.CpasInfo:
    if not identity().may_view(cpas):
        abort(403)
    return _enter_cpas(cpas)


def _enter_cpas(cpas: str) -> queries.CpasInfo:
    info = read(lambda s: queries.cpas_info(s, cpas, lang()))
    g.cpas = info
    session[SESSION_CPAS] = cpas
    return info


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
        end_account_sessions(who.user, who.actor)
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
        with svc().admin(who.actor) as admin:
            account = admin.store.admin_by_username(who.user)
            if account is not None:
                account.lang = chosen
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
    choices = read(lambda s: queries.cpas_choices(s, lang(), None if who.operator else who.cpas, q))
    return render_template("web/choose_cpas.html", choices=choices, q=q)


# -- "Gestion des accès" -----------------------------------------------------------------------------------
@bp.get("/cpas/<cpas>/")
def home(cpas: str) -> str:
    info = require_manager(cpas)
    q = request.args.get("q", "").strip()[:100]
    page = int_arg("page")
    per_page = web_settings().per_page

    def run(store: Store) -> tuple[list[queries.ProfileRow], queries.Page[queries.UserRow], int]:
        users = queries.users_page(store, cpas, lang(), active=True, page=page, per_page=per_page, q=q)
        inactive = store.users_page(cpas, active=False, page=1, per_page=1)[1]
        return queries.profile_rows(store, cpas, lang()), users, inactive

    profiles, users, inactive = read(run)
    return render_template("web/home.html", info=info, profiles=profiles, users=users, q=q, inactive=inactive,
                           form=ActionForm())


@bp.get("/cpas/<cpas>/users/inactive")
def inactive_users(cpas: str) -> str:
    info = require_manager(cpas)
    q = request.args.get("q", "").strip()[:100]
    page = int_arg("page")
    users = read(lambda s: queries.users_page(s, cpas, lang(), active=False, page=page,
                                              per_page=web_settings().per_page, q=q))
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


def _render_profile_form(
    info: queries.CpasInfo,
    form: ProfileForm,
    draft: Draft,
    profile: queries.ProfileRow | None,
    *,
    status: int = 200,
    error: str | None = None,
    confirm_missing: bool = False,
) -> tuple[str, int]:
    catalog = svc().catalog
    reader = lang()
    form.description_fr.data = draft.description_fr
    form.description_nl.data = draft.description_nl
    form.version.data = str(draft.version) if draft.version is not None else ""
    builtin = profile is not None and profile.builtin
    others = [p for p in read(lambda s: queries.profile_rows(s, info.id, reader))
              if profile is None or p.id != profile.id]
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
        others=others,
        includes=draft.includes,
        missing=[] if builtin else missing_prerequisites(catalog, reader, draft.functions),
        confirm_missing=confirm_missing,
        error=error,
        js_data=json.dumps({
            "templates": templates_data(catalog),
            "prerequisites": prerequisite_map(catalog),
            "groups": {code: list(catalog.group_functions(code)) for code in catalog.groups},
        }).replace("</", "<\\/"),
    ), status


def _profile_form(cpas: str, profile_id: int | None) -> Any:
    info = require_manager(cpas)
    catalog = svc().catalog
    profile = None
    if profile_id is not None:
        profile = read(lambda s: queries.profile_row(s, cpas, profile_id, lang()))
    form = ProfileForm()
    if request.method == "GET":
        draft = Draft()
        if profile is not None:
            pid = profile.id
            functions, includes = read(lambda s: (s.profile_functions(cpas, pid), s.profile_includes(cpas, pid)))
            draft = Draft(profile.description_fr or "", profile.description_nl or "", set(functions), set(includes),
                          profile.version)
        return _render_profile_form(info, form, draft, profile)

    draft = _draft_from_request(form)
    action = request.form.get("action", "save")
    if action not in ("save", "save_anyway", "fix_and_save"):
        problem = apply(catalog, draft, action)
        if problem is not None:
            abort(400)
        return _render_profile_form(info, form, draft, profile)
    if action == "fix_and_save":
        draft.functions = add_prerequisites(catalog, draft.functions)
    if not form.validate():
        return _render_profile_form(info, form, draft, profile, status=400)
    builtin = profile is not None and profile.builtin
    if not builtin and action == "save" and missing_prerequisites(catalog, lang(), draft.functions):
        return _render_profile_form(info, form, draft, profile, confirm_missing=True)
    functions = draft.ordered_functions(catalog)
    if profile is not None and draft.version is None:
        abort(400)
    try:
        with svc().admin(identity().actor, cpas) as admin:
            if profile is None:
                created = admin.create_profile(cpas, description_fr=draft.description_fr or None,
                                               description_nl=draft.description_nl or None,
                                               functions=functions, includes=sorted(draft.includes))
                name = profile_description(created, lang())
            else:
                assert draft.version is not None
                updated = admin.update_profile(
                    cpas, profile.id, version=draft.version,
                    description_fr=draft.description_fr or None, description_nl=draft.description_nl or None,
                    functions=None if builtin else functions, includes=None if builtin else sorted(draft.includes))
                name = profile_description(updated, lang())
    except StaleVersion as err:
        draft.version = err.current_version  # saving again replaces the other change
        return _render_profile_form(info, form, draft, profile, status=409, error=error_message(err))
    except ServiceError as err:
        return _render_profile_form(info, form, draft, profile, status=err.status, error=error_message(err))
    if profile is None:
        flash(_("The profile “%(name)s” was created.", name=name), "success")
    else:
        flash(_("The profile “%(name)s” was saved.", name=name), "success")
    return see_other("web.home", cpas=cpas)


@bp.route("/cpas/<cpas>/profiles/new", methods=["GET", "POST"])
def profile_new(cpas: str) -> Any:
    return _profile_form(cpas, None)


@bp.route("/cpas/<cpas>/profiles/<int:profile_id>", methods=["GET", "POST"])
def profile_edit(cpas: str, profile_id: int) -> Any:
    return _profile_form(cpas, profile_id)


@bp.get("/cpas/<cpas>/profiles/<int:profile_id>/print")
def profile_print(cpas: str, profile_id: int) -> str:
    info = require_manager(cpas)
    catalog = svc().catalog

    def run(store: Store) -> tuple[queries.ProfileRow, list[Any], set[str], list[str], set[str]]:
        profile = queries.profile_row(store, cpas, profile_id, lang())
        users = store.profile_users(cpas, profile_id)
        own = set(store.profile_functions(cpas, profile_id))
        descriptions = {p.id: p.description for p in queries.profile_rows(store, cpas, lang())}
        included = [descriptions[i] for i in store.profile_includes(cpas, profile_id) if i in descriptions]
        return profile, users, own, included, queries.profile_closure(store, cpas, profile_id)

    profile, users, own, included, closure = read(run)
    return render_template("web/profile_print.html", info=info, profile=profile, users=users, included=included,
                           tree=build_tree(catalog, lang(), closure, prune=True),
                           count=len(closure), own=len(own))


@bp.route("/cpas/<cpas>/profiles/<int:profile_id>/delete", methods=["GET", "POST"])
def profile_delete(cpas: str, profile_id: int) -> Any:
    info = require_manager(cpas)
    profile = read(lambda s: queries.profile_row(s, cpas, profile_id, lang()))
    form = ActionForm()
    if request.method == "GET":
        return render_template("web/confirm.html", info=info, form=form, kind="delete", subject=profile.description,
                               builtin=profile.builtin), (409 if profile.builtin else 200)
    try:
        with svc().admin(identity().actor, cpas) as admin:
            admin.delete_profile(cpas, profile_id)
    except ServiceError as err:
        flash(error_message(err), "error")
        return see_other("web.home", cpas=cpas)
    flash(_("The profile “%(name)s” was deleted.", name=profile.description), "success")
    return see_other("web.home", cpas=cpas)


# -- users -----------------------------------------------------------------------------------------------
@bp.route("/cpas/<cpas>/users/<user>/profiles", methods=["GET", "POST"])
def assign(cpas: str, user: str) -> Any:
    info = require_manager(cpas)
    row = read(lambda s: require_user(s, cpas, user))
    form = ActionForm()
    if request.method == "POST":
        try:
            ids = sorted({int(v) for v in request.form.getlist("profiles")})
        except ValueError:
            abort(400)
        try:
            with svc().admin(identity().actor, cpas) as admin:
                admin.set_user_profiles(cpas, user, ids)
        except ServiceError as err:
            flash(error_message(err), "error")
            return back_to_list(cpas)
        flash(_("The profiles of %(name)s were saved.", name=row.name or row.user), "success")
        return back_to_list(cpas)
    profiles, assigned = read(lambda s: (queries.profile_rows(s, cpas, lang()), set(s.user_profiles(cpas, user))))
    return render_template("web/assign.html", info=info, form=form, user=row, profiles=profiles, assigned=assigned,
                           back=safe_next(request.args.get("back"), url_for("web.home", cpas=cpas)))


def _access_page(cpas: str, user_id: str, name: str, *, mine: bool, info: queries.CpasInfo) -> str:
    catalog = svc().catalog
    policy = svc().policy(cpas)
    view = policy.view(user_id)
    profiles = read(lambda s: queries.profiles_access(s, cpas, view.profiles, lang()))
    sections = [
        (p, build_tree(catalog, lang(), p.functions, prune=True, effective=view.functions))
        for p in profiles
    ]
    effective = len({c for c in view.functions if c in catalog and catalog.functions[c].selectable})
    return render_template("web/access.html", info=info, name=name, sections=sections, mine=mine,
                           effective=effective, active=view.active or not view.known, known=view.known)


@bp.get("/cpas/<cpas>/users/<user>/print")
def user_print(cpas: str, user: str) -> str:
    info = require_manager(cpas)
    row = read(lambda s: require_user(s, cpas, user))
    return _access_page(cpas, user, row.name or row.user, mine=False, info=info)


@bp.route("/cpas/<cpas>/users/<user>/deactivate", methods=["GET", "POST"])
def deactivate(cpas: str, user: str) -> Any:
    info = require_manager(cpas)
    row = read(lambda s: require_user(s, cpas, user))
    form = ActionForm()
    if request.method == "GET":
        return render_template("web/confirm.html", info=info, form=form, kind="deactivate",
                               subject=row.name or row.user,
                               back=safe_next(request.args.get("back"), url_for("web.home", cpas=cpas)))
    try:
        with svc().admin(identity().actor, cpas) as admin:
            admin.deactivate_user(cpas, user)
    except ServiceError as err:
        flash(error_message(err), "error")
        return back_to_list(cpas)
    flash(_("%(name)s was deactivated: every profile was removed and the user is now in the list of "
            "inactive users.", name=row.name or row.user), "success")
    return back_to_list(cpas)


@bp.post("/cpas/<cpas>/users/<user>/reactivate")
def reactivate(cpas: str, user: str) -> Response:
    require_manager(cpas)
    row = read(lambda s: require_user(s, cpas, user))
    try:
        with svc().admin(identity().actor, cpas) as admin:
            admin.reactivate_user(cpas, user)
    except ServiceError as err:
        flash(error_message(err), "error")
        return see_other("web.inactive_users", cpas=cpas)
    flash(_("%(name)s was reactivated, with no profile.", name=row.name or row.user), "success")
    return see_other("web.inactive_users", cpas=cpas)


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
    info = require_member(cpas)
    who = identity()
    return _access_page(cpas, who.user, who.name, mine=True, info=info)


# -- Admin-Logs --------------------------------------------------------------------------------------------
def _audit_filter() -> tuple[AuditFilterForm, queries.AuditFilter]:
    form = AuditFilterForm(request.args)
    if not form.validate():
        return form, queries.AuditFilter()
    return form, queries.AuditFilter(form.date_from.data, form.date_to.data, form.actor.data or "",
                                     form.action.data or "")


@bp.get("/cpas/<cpas>/audit")
def audit(cpas: str) -> str:
    info = require_manager(cpas)
    form, flt = _audit_filter()
    page = int_arg("page")

    def run(store: Store) -> tuple[queries.Page[Any], list[str], list[str]]:
        actions, actors = queries.audit_filter_values(store, cpas)
        return queries.audit_page(store, cpas, flt, page=page, per_page=50), actions, actors

    entries, actions, actors = read(run)
    zone = queries.local_zone()
    rows = [
        {
            "at": (e.at if e.at.tzinfo else e.at.replace(tzinfo=queries.UTC)).astimezone(zone),
            "actor": e.actor,
            "action": e.action,
            "action_label": action_label(e.action),
            "target": e.target,
            "subject": _audit_subject(e.before, e.after),
            "before": json.dumps(e.before, ensure_ascii=False, indent=1) if e.before is not None else "",
            "after": json.dumps(e.after, ensure_ascii=False, indent=1) if e.after is not None else "",
        }
        for e in entries.items
    ]
    query = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template("web/audit.html", info=info, form=form, entries=entries, rows=rows,
                           actions=[(a, action_label(a)) for a in actions], actors=actors, query=query)


def _audit_subject(before: Any, after: Any) -> str:
    snapshot = after if isinstance(after, dict) else before if isinstance(before, dict) else {}
    if "description_fr" in snapshot or "description_nl" in snapshot:
        return str((snapshot.get("description_nl") if lang() == "nl" else snapshot.get("description_fr"))
                   or snapshot.get("description_fr") or snapshot.get("description_nl") or "")
    return str(snapshot.get("name") or "")


def _csv_cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    # a spreadsheet must not run a cell as a formula
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@bp.get("/cpas/<cpas>/audit.csv")
def audit_csv(cpas: str) -> Response:
    require_manager(cpas)
    _form, flt = _audit_filter()
    entries = read(lambda s: queries.audit_rows(s, cpas, flt, limit=CSV_LIMIT))

    def generate() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["at", "actor", "action", "target", "before", "after"])
        for n, entry in enumerate(entries, 1):
            writer.writerow([iso(entry.at), _csv_cell(entry.actor), _csv_cell(entry.action), _csv_cell(entry.target),
                             "" if entry.before is None else _csv_cell(entry.before),
                             "" if entry.after is None else _csv_cell(entry.after)])
            if n % 500 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    response = Response(stream_with_context(generate()), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="admin-logs-{cpas}.csv"'
    return response
