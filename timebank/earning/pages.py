"""The committee's earning pages (社区两委): claims, publicity, tasks with the venue QR, the points list.

Beside them under ``/committee``: households and cards (:mod:`timebank.people.pages`), the books
(:mod:`timebank.audit.books_pages`) and the reports (:mod:`timebank.reports.pages`).

Access is the API's: the operations check the roles (reviewers approve, committee writes the points
list, ...) and the community; the pages admit committee members, grid workers (claims, tasks,
households) and supervisors, who see everything and change nothing (every POST refused, no buttons).
Forms that change something carry the CSRF token and a one-time ``form_key``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from timebank.core.clock import local_zone, now, to_local, utc_naive
from timebank.core.errors import DomainError, ValidationFailed
from timebank.core.extensions import db
from timebank.core.pages import check_form, form_number, qr_svg, roles_required
from timebank.core.policy import require_community
from timebank.core.users import User
from timebank.earning import operations as earning
from timebank.earning import tasks, teams
from timebank.earning.api import CapSchema, RuleIn
from timebank.earning.models import RULE_CATEGORIES, Claim, Rule, RuleVersion, Task, TaskTeam
from timebank.earning.tasks_api import TaskIn
from timebank.people import staff_pages as staff
from timebank.people.models import Household, Resident
from timebank.people.staff_pages import can_write, me, refuse_supervisor_writes

bp = Blueprint("web_committee", __name__, url_prefix="/committee")
bp.before_request(refuse_supervisor_writes)

#: Who opens which pages (admin always). Supervisors read; the operations decide who may write.
READERS = ("committee", "grid_worker", "supervisor")


# --- claims and publicity (申报审核与公示) ----------------------------------------------------------

@bp.get("/claims")
@roles_required(*READERS)
def claims():
    place = staff.place()
    user = me()
    pending = db.session.execute(
        earning.claims_query(place.id, "pending").order_by(Claim.created_at, Claim.id).limit(100)).scalars().all()
    publicized = db.session.execute(
        earning.claims_query(place.id, "publicized").order_by(Claim.publicity_ends_at, Claim.id).limit(100)
    ).scalars().all()
    decided = db.session.execute(
        select(Claim).where(Claim.community_id == place.id, Claim.status.in_(("posted", "rejected")))
        .order_by(Claim.id.desc()).limit(20)).scalars().all()
    enterers = {u.id: u.username for u in db.session.execute(
        select(User).where(User.id.in_({c.entered_by_user_id for c in pending if c.entered_by_user_id})))
        .scalars()} if pending else {}
    return render_template("committee/claims.html", place=place, pending=pending, publicized=publicized,
                           decided=decided, enterers=enterers, can_review=can_write(*earning.REVIEWERS),
                           can_reverse=can_write(*earning.REVERSERS),
                           can_object=user.role != "supervisor", own_household=user.household_id, me_id=user.id,
                           can_enter=can_write(*earning.ENTERING_STAFF), rules=_rules(place.id))


def find_card(place_id: int, code: str) -> tuple[Household | None, Resident | None]:
    """The household and the resident behind a scanned card or a typed phone number: a resident's
    own card or phone gives both; a household card gives the household, and its member when it has
    only one (a household of several asks which member). Neither: a refusal in words."""
    code = code.strip().upper().replace(" ", "").replace("-", "")
    resident = db.session.execute(select(Resident).join(Household).where(
        Household.community_id == place_id, or_(Resident.member_code == code, Resident.phone == code))
    ).scalar_one_or_none() if code else None
    if resident is not None:
        return resident.household, resident
    household = db.session.execute(select(Household).where(
        Household.community_id == place_id, Household.member_code == code)).scalar_one_or_none() if code else None
    if household is None:
        raise ValidationFailed(errors={"card": [_("No resident of this community has this card or phone number.")]})
    active = [m for m in household.members if m.active]
    return household, active[0] if len(active) == 1 else None


def _resident_from_card(place_id: int, code: str) -> Resident:
    """One resident from a card or phone number, for forms that name one person (a team's leader or
    member): a household card of several members is refused in words."""
    _household, resident = find_card(place_id, code)
    if resident is None:
        raise ValidationFailed(errors={"card": [
            _("This household card has several members: scan the resident's own card.")]})
    return resident


def chosen_member(household: Household, resident_id: int | None) -> Resident | None:
    """The member chosen from a household's card (None when none, or one not of this household)."""
    return next((m for m in household.members if m.id == resident_id and m.active), None)


@bp.post("/claims/enter")
@roles_required(*earning.ENTERING_STAFF)
def enter_claim():
    """代录: a grid worker or committee member enters a claim for a resident (an elderly resident with a
    printed card, say); the claim records who entered it and then follows the usual review.

    A household card of several members asks first which member it is for: a page listing them,
    whose form sends the same claim again with the member chosen (and a new form key)."""
    place = staff.place()
    user = me()
    back = url_for(".claims", **({"community": request.values["community"]} if request.values.get("community") else {}))
    card = request.form.get("card") or ""
    if not 8 <= len((request.form.get("form_key") or "").strip()) <= 64:
        abort(400)  # as take_form_key: a form without its key is refused before anything else
    try:
        household, resident = find_card(place.id, card)
    except DomainError as exc:
        db.session.rollback()
        flash(staff.message(exc), "error")
        return redirect(back)
    if resident is None:
        resident = chosen_member(household, request.form.get("resident_id", type=int))
    if resident is None:
        rule = db.session.execute(select(Rule).where(Rule.community_id == place.id,
                                                     Rule.code == (request.form.get("rule_code") or ""))
                                  ).scalar_one_or_none()
        version = earning.latest_version(rule) if rule is not None else None
        return render_template("committee/choose_member.html", household=household,
                               members=[m for m in household.members if m.active], card=card,
                               rule_code=request.form.get("rule_code") or "",
                               rule_title=version.title if version else "",
                               note=(request.form.get("note") or "").strip()[:500], back=back)
    chosen = resident

    def act():
        note = (request.form.get("note") or "").strip()[:500]
        return earning.create_claim(user, place, request.form.get("rule_code") or "", chosen.id, note)

    return staff.write_once(act,
                            lambda claim: _("Claim %(id)d entered for %(name)s.", id=claim.id,
                                            name=claim.resident.name),
                            back)


#: A refused reversal in words (the shared words of these codes speak of approvals and goods).
REVERSAL_REFUSALS = {
    "self_approval": _l("this claim is of your own household: another committee member takes it back."),
    "already_reversed": _l("this claim was already taken back."),
    "claim_not_posted": _l("only a claim whose points were credited can be taken back."),
    "insufficient_points": _l("the household has already spent these points, so they cannot be taken back."),
    "insufficient_hours": _l("the minutes of this claim were already spent, so they cannot be taken back."),
}


def _reverse(user, claim, reason):
    try:
        return earning.reverse_claim(user, claim, reason)
    except DomainError as exc:
        words = REVERSAL_REFUSALS.get(exc.code)
        if words is None:
            raise
        raise DomainError(str(words), code="reversal_refused", status=exc.status) from exc


@bp.post("/claims/<int:claim_id>/<action>")
@roles_required("committee", "grid_worker")
def claim_action(claim_id: int, action: str):
    """Approve, reject, object to, or take back (撤销, committee: a posted claim, with a reason) a claim."""
    user = me()
    reason = (request.form.get("reason") or "").strip()[:500]
    back = url_for(".claims", **({"community": request.values["community"]} if request.values.get("community") else {}))
    if action not in ("approve", "reject", "object", "reverse"):
        abort(404)
    if action != "approve" and not reason:
        flash(_("Give a reason."), "error")
        return redirect(back)

    def act():
        if action == "object":
            return earning.object_claim(user, claim_id, reason)
        if action == "approve":
            return earning.approve_visible_claim(user, claim_id)
        claim = earning.visible_claim(user, claim_id)
        if action == "reverse":
            _reverse(user, claim, reason)
            return claim
        return earning.reject_claim(user, claim, reason)

    def said(claim):
        if action == "reverse":
            return _("Claim %(id)d taken back: %(points)d points returned to the community.", id=claim.id,
                     points=claim.points)
        if action == "reject":
            return _("Claim %(id)d rejected.", id=claim.id)
        if action == "object":
            return _("Objection recorded; claim %(id)d is back in the queue.", id=claim.id)
        if claim.status == "publicized":
            return _("Claim %(id)d approved; on the notice board until %(day)s.", id=claim.id,
                     day=to_local(claim.publicity_ends_at).strftime("%Y-%m-%d %H:%M"))
        return _("Claim %(id)d approved; %(points)d points credited.", id=claim.id, points=claim.points)

    return staff.write_once(act, said, back)


# --- tasks and the venue QR (扫码签到) ------------------------------------------------------------

def _parse_local(text: str | None) -> datetime | None:
    """A ``datetime-local`` field (local time) as an aware datetime."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=local_zone())
    except ValueError:
        return None


@bp.route("/tasks", methods=["GET", "POST"], endpoint="tasks")
@roles_required(*READERS)
def task_list():
    place = staff.place()
    user = me()
    if request.method == "POST":
        starts, ends = _parse_local(request.form.get("starts_at")), _parse_local(request.form.get("ends_at"))
        slots = form_number(request.form.get("slots"))

        def act():
            check_form(TaskIn(), {"slots": slots})
            if starts is None or ends is None or not slots or slots < 1:
                raise ValidationFailed(errors={"starts_at": [_("Give the start, the end and the places.")]})
            return tasks.create_task(user, place, request.form.get("rule_code", ""),
                                     (request.form.get("title") or "").strip()[:200] or "?", starts, ends, slots,
                                     points_per="team" if request.form.get("points_per") == "team" else "member")

        return staff.write_once(act, lambda task: _("Task “%(title)s” created.", title=task.title), url_for(".tasks"))
    rows = db.session.execute(
        select(Task).where(Task.community_id == place.id).order_by(Task.starts_at.desc()).limit(50)).scalars().all()
    counts = dict(db.session.execute(
        select(tasks.CheckIn.task_id, func.count()).where(tasks.CheckIn.task_id.in_([t.id for t in rows]))
        .group_by(tasks.CheckIn.task_id)).all()) if rows else {}
    moment = utc_naive()
    rules = [r for r, v in _rules(place.id) if v.active]
    start = to_local(now()).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    team_rows = db.session.execute(select(TaskTeam).where(TaskTeam.task_id.in_([t.id for t in rows]))
                                   .order_by(TaskTeam.id)).scalars().all() if rows else []
    task_teams: dict[int, list[dict]] = {}
    for team in team_rows:
        task_teams.setdefault(team.task_id, []).append(teams.team_view(user, team))
    return render_template("committee/tasks.html", tasks=rows, counts=counts, moment=moment, rules=rules,
                           teams=task_teams, can_team=can_write(*teams.TEAM_STAFF),
                           versions={r.id: earning.latest_version(r) for r in rules},
                           default_start=start.strftime("%Y-%m-%dT%H:%M"),
                           default_end=(start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
                           can_create=can_write(*tasks.TASK_WRITERS))


@bp.post("/tasks/<int:task_id>/teams")
@roles_required(*teams.TEAM_STAFF)
def task_teams(task_id: int):
    """Staff form a team for a resident (one without a phone, say), by card or phone number, and add
    members to a team or take them out."""
    place = staff.place()
    user = me()
    action = request.form.get("action")

    def act():
        task = tasks.visible_task(user, task_id)
        require_community(user, task.community_id)
        if action == "form":
            leader = _resident_from_card(place.id, request.form.get("card") or "")
            kind = "household" if request.form.get("kind") == "household" else "group"
            return teams.create_team(user, task, kind, (request.form.get("name") or "").strip()[:100] or None,
                                     leader.id)
        team = teams.visible_team(user, request.form.get("team_id", type=int) or 0)
        if team.task_id != task.id:
            raise ValidationFailed(errors={"team_id": [_("This team is of another task.")]})
        if action == "add":
            return teams.join_team(user, team, _resident_from_card(place.id, request.form.get("card") or "").id)
        if action == "remove":
            teams.leave_team(user, team, request.form.get("resident_id", type=int) or 0)
            return team
        raise ValidationFailed(errors={"action": [_("Unknown action.")]})

    return staff.write_once(act, lambda team: _("Team “%(name)s” saved.", name=team.name), url_for(".tasks"))


def _code(task: Task) -> dict:
    code = tasks.checkin_code(me(), task)
    seconds = tasks.period_seconds()
    moment = now().timestamp()
    to_rotation = int(seconds - moment % seconds)
    return {"url": code["url"], "svg": qr_svg(code["url"], 10), "expires_at": to_local(code["expires_at"]).isoformat(),
            "seconds_to_rotation": max(1, to_rotation), "checked_in": tasks.checked_in(task), "slots": task.slots}


@bp.get("/tasks/<int:task_id>/qr")
@roles_required(*READERS)
def task_qr(task_id: int):
    """The full-screen check-in code for a projector or a tablet at the venue; it rotates by itself."""
    task = tasks.visible_task(me(), task_id)
    require_community(me(), task.community_id)
    return render_template("committee/task_qr.html", task=task, code=_code(task))


@bp.get("/tasks/<int:task_id>/qr.json")
@roles_required(*READERS)
def task_qr_json(task_id: int):
    task = tasks.visible_task(me(), task_id)
    require_community(me(), task.community_id)
    response = jsonify(_code(task))
    response.headers["Cache-Control"] = "no-store"
    return response


# --- the points list (积分细则) -------------------------------------------------------------------

def _rules(community_id: int):
    rules = db.session.execute(select(Rule).where(Rule.community_id == community_id).order_by(Rule.code)).scalars()
    return [(rule, earning.latest_version(rule)) for rule in rules]


def _cap(form) -> dict | None:
    period = form.get("cap_period") or ""
    points, minutes = form_number(form.get("cap_max_points")), form_number(form.get("cap_max_minutes"))
    if period and (points or minutes):
        return {"period": period, "max_points": points or None, "max_minutes": minutes or None}
    return None


def _numbers(form) -> dict:
    """The rule form's numbers, bounded as POST /api/v1/rules bounds them (its own schemas)."""
    numbers = {name: form_number(form.get(name)) for name in ("points", "minutes", "publicity_days")}
    check_form(RuleIn(), numbers)
    cap = _cap(form)
    if cap:
        check_form(CapSchema(), cap)
    return numbers


@bp.route("/rules", methods=["GET", "POST"])
@roles_required(*READERS)
def rules():
    place = staff.place()
    user = me()
    if request.method == "POST":
        form = request.form

        def act():
            numbers = _numbers(form)
            return earning.create_rule(
                user, place, (form.get("code") or "").strip()[:64], (form.get("title") or "").strip()[:200],
                form.get("category", ""), numbers["points"] or 0, form.get("review", "review"),
                minutes=numbers["minutes"] or 0, publicity_days=numbers["publicity_days"] or 0,
                cap=_cap(form))

        return staff.write_once(act, lambda rule: _("Item %(code)s added to the points list.", code=rule.code),
                      url_for(".rules"))
    listed = _rules(place.id)
    in_force = {rule.id: earning.version_at(rule) for rule, _v in listed}
    return render_template("committee/rules.html", rules=listed, in_force=in_force, categories=RULE_CATEGORIES,
                           can_edit=can_write(*earning.RULE_WRITERS))


@bp.post("/rules/<int:rule_id>")
@roles_required("committee")
def change_rule(rule_id: int):
    """A change is a new version from now (or a later date); claims keep the version they were made under."""
    user = me()
    form = request.form
    effective = _parse_local(form.get("effective_from"))

    def act():
        numbers = _numbers(form)
        changes = {"title": (form.get("title") or "").strip()[:200], "points": numbers["points"],
                   "minutes": numbers["minutes"] or 0, "review": form.get("review"),
                   "publicity_days": numbers["publicity_days"] or 0, "active": form.get("active") == "1"}
        changes = {k: v for k, v in changes.items() if v is not None and v != ""}
        changes["cap"] = _cap(form)  # an empty limit removes it
        rule = earning.visible_rule(user, rule_id)
        return earning.change_rule(user, rule, changes, effective_from=effective)

    return staff.write_once(act, lambda v: _("Version %(n)d saved.", n=v.number), url_for(".rules"))


def init_app(app) -> None:
    app.register_blueprint(bp)


# --- searching claims -------------------------------------------------------------------------------

CLAIM_SEARCH_PAGE = 50
CLAIM_STATUSES = ("pending", "publicized", "posted", "rejected", "reversed")


@bp.get("/claims/search")
@roles_required("committee", "grid_worker", "supervisor")
def claim_search():
    """Every claim of the community, found by a resident's or household's name, a card code, a phone
    number or the item of the points list, by status and by day; newest first, 50 a page."""
    place = staff.place()
    args = request.args
    filters = {k: (args.get(k) or "").strip()[:100] for k in ("q", "status", "since", "until")}
    query = (select(Claim).join(Resident, Resident.id == Claim.resident_id)
             .join(Household, Household.id == Claim.household_id)
             .where(Claim.community_id == place.id))
    if filters["q"]:
        text = filters["q"]
        titles = select(RuleVersion.id).where(RuleVersion.title.contains(text, autoescape=True))
        query = query.where(or_(Resident.name.contains(text, autoescape=True),
                                Household.name.contains(text, autoescape=True),
                                Resident.member_code == text.upper(), Household.member_code == text.upper(),
                                Resident.phone == text, Claim.rule_version_id.in_(titles)))
    if filters["status"] in CLAIM_STATUSES:
        query = earning.filter_status(query, filters["status"])
    for key, compare in (("since", Claim.created_at.__ge__), ("until", Claim.created_at.__lt__)):
        day = _search_day(filters[key], plus_one=(key == "until"))
        if day is not None:
            query = query.where(compare(day))
    before = args.get("before", type=int)
    if before:
        query = query.where(Claim.id < before)
    rows = db.session.execute(query.order_by(Claim.id.desc()).limit(CLAIM_SEARCH_PAGE + 1).options(
        selectinload(Claim.resident), selectinload(Claim.household), selectinload(Claim.rule_version),
        selectinload(Claim.reversal))).scalars().all()
    more = len(rows) > CLAIM_SEARCH_PAGE
    rows = rows[:CLAIM_SEARCH_PAGE]
    kept = {k: v for k, v in filters.items() if v}
    return render_template("committee/claim_search.html", rows=rows, filters=filters, args=kept,
                           statuses=CLAIM_STATUSES,
                           next_before=rows[-1].id if more else None)


def _search_day(text: str, plus_one: bool = False):
    """A day typed in a search form (YYYY-MM-DD, the community's time zone) as the stored UTC time."""
    try:
        day = datetime.fromisoformat(text).replace(tzinfo=local_zone()) if text else None
    except ValueError:
        return None
    if day is None:
        return None
    return utc_naive(day + timedelta(days=1) if plus_one else day)
