"""Access reviews in the admin web UI ("Revues d'accès" / "Toegangsreviews"), routes of the ``web`` blueprint.

A configuration manager starts a review of their CPAS with a due date (the use case freezes every active
user's assignments), decides for each user keep / revoke / keep until a date with an optional comment, and
closes ("signs off") the review once every user is decided; a closed review is read-only and prints as a
report. A revoke removes the user's reviewed profiles at once, so it first shows what it would do (the
preview step of ``views``, "Aperçu des changements"). Operators see every CPAS's last closed review and
which are overdue (``overview``). Pages read through ``reads`` in one read transaction (``cpas_page``),
changes go through one use case each (``change``); refusals are told in the reader's language.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import abort, flash, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, StringField
from wtforms.validators import AnyOf, DataRequired, Length, Optional

from .. import reads
from ..admin import Admin
from ..errors import ServiceError
from .forms import ActionForm, _text, _visible
from .messages import error_message
from .views import bp, change, confirmed, cpas_page, identity, lang, may, preview, preview_page, see_other, svc

DECISIONS = ("keep", "revoke", "keep_until")
COMMENT_MAX = 500


def _date_errors(field: DateField) -> None:
    """A date typed but not understood: one sentence of ours, not WTForms' English."""
    if field.raw_data and field.raw_data[0] and field.data is None:
        field.errors = [str(_l("Not a valid date."))]


class StartReviewForm(FlaskForm):
    due = DateField(_l("Due date"), validators=[DataRequired(_l("This field is required."))])

    def validate(self, extra_validators: Any = None) -> bool:
        ok = super().validate(extra_validators)
        _date_errors(self.due)
        return ok


class DecisionForm(FlaskForm):
    """One user's decision. The page shows one such form per user, with ids of its own (see the template)."""

    decision = StringField(_l("Decision"), validators=[DataRequired(_l("Choose a decision.")),
                                                       AnyOf(DECISIONS, message=_l("Choose a decision."))])
    until = DateField(_l("Keep until"), validators=[Optional()])
    comment = StringField(_l("Comment"), validators=[
        Optional(), Length(max=COMMENT_MAX, message=_l("This field cannot be longer than %(max)d characters.")),
        _visible], filters=[_text])

    def validate(self, extra_validators: Any = None) -> bool:
        ok = super().validate(extra_validators)
        _date_errors(self.until)
        if self.decision.data == "keep_until" and not self.until.errors and self.until.data is None:
            self.until.errors = [*self.until.errors, str(_l("Give the date until which the access is kept."))]
            return False
        return ok


# -- helpers ---------------------------------------------------------------------------------------------------
def today() -> date:
    """Today in Brussels, by the clock the use cases keep (``Service.now``), so that the page and the refusals
    agree on what is overdue or in the past."""
    return svc().now().astimezone(reads.local_zone()).date()


def interval_days() -> int:
    return svc().settings.review_interval_days


@bp.app_template_filter("review_when")
def review_when(moment: datetime | None) -> str:
    """A stored instant as Brussels time, the way the Admin-Logs show it."""
    if moment is None:
        return ""
    if moment.tzinfo is None:  # stored in UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(reads.local_zone()).strftime("%d/%m/%Y %H:%M")


@bp.app_template_filter("review_last_day")
def review_last_day(end: datetime | None) -> str:
    """The last day an assignment held, in Brussels: its ``valid_until`` instant is excluded."""
    if end is None:
        return ""
    return review_day(end - timedelta(microseconds=1))


@bp.app_template_filter("review_day")
def review_day(day: date | datetime | None) -> str:
    """A date, or the Brussels date of an instant (the end of an assignment's term)."""
    if day is None:
        return ""
    if isinstance(day, datetime):
        day = (day if day.tzinfo is not None else day.replace(tzinfo=UTC)).astimezone(reads.local_zone())
    return day.strftime("%d/%m/%Y")


# -- the CPAS's reviews ------------------------------------------------------------------------------------------
@bp.route("/cpas/<cpas>/reviews", methods=["GET", "POST"])
def reviews(cpas: str) -> Any:
    """GET: the CPAS's reviews, newest first, with the form that starts one. POST: start one."""
    form = StartReviewForm()
    status = 200
    if request.method == "POST":
        may(cpas)
        if form.validate():
            assert form.due.data is not None
            try:
                started = change(Admin.start_review, cpas, form.due.data)
            except ServiceError as err:
                form.due.errors = [*form.due.errors, error_message(err)]
                status = err.status
            else:
                flash(_("The access review was started: decide now for each user."), "success")
                return see_other("web.review", cpas=cpas, review_id=started.summary.id)
        else:
            status = 400
    info, found = cpas_page(cpas, lambda store: reads.reviews(store, cpas))
    return render_template("web/reviews.html", info=info, reviews=found, form=form, today=today(),
                           open_review=next((r for r in found if not r.closed), None)), status


# -- one review ------------------------------------------------------------------------------------------------
def _review_page(cpas: str, review_id: int, *, status: int = 200, draft_for: str | None = None,
                 draft: DecisionForm | None = None, error: str | None = None) -> tuple[str, int]:
    """One review; ``draft`` (the form sent for ``draft_for``) is shown again with its ``error`` or its field
    errors, the other users' forms as they are."""
    info, detail = cpas_page(cpas, lambda store: reads.review_detail(store, cpas, review_id))
    show = request.args.get("show", "")
    items = [i for i in detail.items if i.decision is None] if show == "open" else list(detail.items)
    # the refusal goes into the user's form when the page still shows it, else above the list
    in_form = not detail.summary.closed and any(i.user == draft_for and i.decision is None for i in items)
    return render_template("web/review.html", info=info, review=detail.summary, items=items,
                           all_items=detail.items, show=show, form=ActionForm(), today=today(),
                           draft_for=draft_for, draft=draft, error=error if in_form else None,
                           page_error=None if in_form else error, lang_=lang()), status


@bp.get("/cpas/<cpas>/reviews/<int:review_id>")
def review(cpas: str, review_id: int) -> tuple[str, int]:
    return _review_page(cpas, review_id)


@bp.post("/cpas/<cpas>/reviews/<int:review_id>/items/<user>")
def review_decide(cpas: str, review_id: int, user: str) -> Any:
    """One user's decision. A revoke first shows what it would do (the preview step: the decision's fields as
    hidden inputs, ``action=edit`` back to the review with them kept, ``confirm`` to record it); keep and keep
    until are recorded at once. A refusal shows the review again with the user's form as sent."""
    may(cpas)
    form = DecisionForm()
    if request.form.get("action") == "edit":  # back from the preview: the form as it was sent, not recorded
        return _review_page(cpas, review_id, draft_for=user, draft=form)
    if not form.validate():
        return _review_page(cpas, review_id, status=400, draft_for=user, draft=form)
    decision = str(form.decision.data)
    until = form.until.data if decision == "keep_until" else None
    comment = form.comment.data or None
    try:
        if decision == "revoke" and not confirmed():
            previewed = preview(Admin.decide_review_item, cpas, review_id, user, decision, until, comment)
            name = previewed.value.item.name or user
            fields = [("decision", decision), ("until", ""), ("comment", comment or "")]
            return preview_page(cpas, _("Revoke the reviewed access of %(name)s", name=name), previewed, fields)
        change(Admin.decide_review_item, cpas, review_id, user, decision, until, comment)
    except ServiceError as err:
        return _review_page(cpas, review_id, status=err.status, draft_for=user, draft=form, error=error_message(err))
    flash(_("The decision was recorded."), "success")
    return see_other("web.review", cpas=cpas, review_id=review_id, _anchor=f"u-{user}",
                     **({"show": request.args["show"]} if request.args.get("show") else {}))


@bp.route("/cpas/<cpas>/reviews/<int:review_id>/close", methods=["GET", "POST"])
def review_close(cpas: str, review_id: int) -> Any:
    """The confirmation (also the answer to a POST without ``confirm``); confirmed, the sign-off."""
    if not confirmed():
        info, detail = cpas_page(cpas, lambda store: reads.review_detail(store, cpas, review_id))
        if detail.summary.closed:
            return see_other("web.review", cpas=cpas, review_id=review_id)
        return render_template("web/review_close.html", info=info, review=detail.summary, form=ActionForm())
    may(cpas)
    try:
        change(Admin.close_review, cpas, review_id)
    except ServiceError as err:
        flash(error_message(err), "error")
        return see_other("web.review", cpas=cpas, review_id=review_id)
    flash(_("The access review was closed and signed off."), "success")
    return see_other("web.review", cpas=cpas, review_id=review_id)


@bp.get("/cpas/<cpas>/reviews/<int:review_id>/print")
def review_print(cpas: str, review_id: int) -> str:
    """The review's report on A4: who reviewed what, the decisions and comments, the sign-off."""
    info, detail = cpas_page(cpas, lambda store: reads.review_detail(store, cpas, review_id))
    return render_template("web/review_print.html", info=info, review=detail.summary, items=detail.items,
                           today=today(), lang_=lang())


# -- across CPAS -----------------------------------------------------------------------------------------------
@bp.get("/reviews")
def reviews_overview() -> str:
    """Each CPAS's last closed review, its open review's progress, the overdue ones first: every CPAS for an
    operator, the CPAS they manage for a manager of several."""
    who = identity()
    if not who.operator and not any(who.may_manage(c) for c in who.cpas):
        abort(403)
    ids = None if who.operator else sorted(c for c in who.cpas if who.may_manage(c))
    day, interval = today(), interval_days()
    rows = svc().read(lambda store: reads.reviews_overview(store, ids, day, interval))
    rows = sorted(rows, key=lambda r: (not r.overdue, r.name(lang()).casefold()))
    return render_template("web/reviews_overview.html", rows=rows, today=day, interval=interval,
                           overdue=sum(1 for r in rows if r.overdue), lang_=lang())


def home_review_status(store: Any, cpas: str) -> Any:
    """For the CPAS's home page: its open review (or None) and whether a review is overdue (the open one past
    its due date, or no review closed within the interval). Read in the page's own read transaction."""
    rows = reads.reviews_overview(store, [cpas], today(), interval_days())
    return rows[0] if rows else None
