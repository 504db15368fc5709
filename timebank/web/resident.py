"""A resident's pages (居民端), built for an elderly person on a cheap phone (适老化).

Home (household points, own hours), history of postings with reasons, the printed card's QR code, a
live pay code that refreshes itself before it expires, claims from the points list and their status,
the tasks of the community with their teams (form a household team or a group, join, leave),
neighbour help (post, accept, confirm), gifts of minutes to kin or the pool, and the supermarket's goods.

Every page works for the logged-in resident's own household only; the rules are the operations'
(the same ones the API asks). Forms that write carry a one-time ``form_key``.
"""

from __future__ import annotations

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import or_, select

import ledger
from ledger.models import Account, Posting, Transaction
from timebank.core import accounts
from timebank.core.clock import now, utc_naive
from timebank.core.errors import DomainError
from timebank.core.extensions import db
from timebank.core.pages import (
    domain_message,
    form_done,
    form_number,
    hours_text,
    local_date,
    qr_svg,
    replay_form,
    resident_required,
    take_form_key,
)
from timebank.earning import operations as earning
from timebank.earning import tasks as task_ops
from timebank.earning import teams
from timebank.earning.models import Claim, ClaimReversal, Rule, Task
from timebank.hours import operations as hours
from timebank.hours.api import TransferIn
from timebank.hours.models import HelpRequest
from timebank.notices import operations as notices
from timebank.people import memberships
from timebank.people.models import Resident
from timebank.reports.pages import standing_of
from timebank.shop import operations as shop
from timebank.shop import partners as shop_partners
from timebank.shop.models import Item

bp = Blueprint("web_resident", __name__, url_prefix="/me")

HISTORY_PAGE = 30


def _me():
    """The logged-in user, the resident and their household."""
    user = current_user._get_current_object()
    return user, user.resident, user.resident.household


def _refused(exc: DomainError) -> None:
    db.session.rollback()
    flash(_("Not done: %(reason)s", reason=domain_message(exc)), "error")


# --- home -----------------------------------------------------------------------------------------

@bp.get("/")
@resident_required
def home():
    user, resident, household = _me()
    points = ledger.balance(db.session, accounts.household_points(household.id))
    minutes = ledger.balance(db.session, accounts.resident_minutes(resident.id))
    open_claims = db.session.execute(
        select(Claim).where(Claim.household_id == household.id, Claim.status.in_(("pending", "publicized")))
        .order_by(Claim.id.desc()).limit(5)).scalars().all()
    # Where the person is (or was) a guest (候鸟, 流动党员): each guest wallet and until when.
    guest_wallets = [(m, memberships.wallet_points(m)) for m in memberships.of_resident(resident.id)]
    return render_template("resident/home.html", resident=resident, household=household, points=points,
                           minutes=minutes, open_claims=open_claims, unread=notices.unread_count(user),
                           guest_wallets=guest_wallets, **standing_of(household))


# --- history --------------------------------------------------------------------------------------

@bp.get("/history")
@resident_required
def history():
    user, resident, household = _me()
    points_code = accounts.household_points(household.id)
    minutes_code = accounts.resident_minutes(resident.id)
    before = request.args.get("before", type=int)
    mine = select(Account.id).where(Account.code.in_((points_code, minutes_code)))
    query = (select(Transaction).where(Transaction.id.in_(
        select(Posting.transaction_id).where(Posting.account_id.in_(mine))))
        .order_by(Transaction.id.desc()).limit(HISTORY_PAGE + 1))
    if before:
        query = query.where(Transaction.id < before)
    transactions = db.session.execute(query).scalars().all()
    more = len(transactions) > HISTORY_PAGE
    transactions = transactions[:HISTORY_PAGE]
    amounts: dict[int, dict[str, int]] = {t.id: {} for t in transactions}
    if transactions:
        rows = db.session.execute(
            select(Posting.transaction_id, Account.code, Posting.amount)
            .join(Account, Account.id == Posting.account_id)
            .where(Posting.transaction_id.in_(list(amounts)), Account.code.in_((points_code, minutes_code))))
        for tx_id, code, amount in rows:
            key = "points" if code == points_code else "minutes"
            amounts[tx_id][key] = amounts[tx_id].get(key, 0) + amount
    # A claim taken back (撤销) is told with the item's title and the committee's reason.
    taken_back = {t.id for t in transactions if t.kind == "claim_reversal"}
    reversals = {reversal.transaction_id: reversal for reversal in db.session.execute(
        select(ClaimReversal).where(ClaimReversal.transaction_id.in_(taken_back))).scalars()} if taken_back else {}
    entries = [{"tx": t, "points": amounts[t.id].get("points"), "minutes": amounts[t.id].get("minutes"),
                "reversal": reversals.get(t.id)}
               for t in transactions]
    return render_template("resident/history.html", entries=entries, household=household,
                           next_before=transactions[-1].id if more else None)


# --- card and pay code ----------------------------------------------------------------------------

@bp.get("/card")
@resident_required
def card():
    user, resident, household = _me()
    return render_template("resident/card.html", resident=resident, household=household,
                           household_qr=qr_svg(household.member_code, 8), resident_qr=qr_svg(resident.member_code, 5))


def _pay_code() -> dict:
    issued = shop.issue_short_pay_code(current_user._get_current_object())
    seconds_left = max(0, int((issued["expires_at"] - now()).total_seconds()))
    return {"id": issued["id"], "pay_code": issued["pay_code"], "short_code": issued["short_code"],
            "expires_at": issued["expires_at"].isoformat(), "seconds_left": seconds_left,
            "svg": qr_svg(issued["pay_code"], 4)}


@bp.get("/pay-code")
@resident_required
def pay_code():
    """The page; its script asks for the code (a write: the short number is stored) and keeps it fresh."""
    user, resident, household = _me()
    points = ledger.balance(db.session, accounts.household_points(household.id))
    return render_template("resident/paycode.html", household=household, points=points)


@bp.post("/pay-code.json")
@resident_required
def pay_code_json():
    """A fresh code with its short number, for the page's script (CSRF token in ``X-CSRFToken``).
    Nothing moves, so no form key: a second call only gives another code."""
    user, resident, household = _me()
    response = jsonify({**_pay_code(), "points": ledger.balance(db.session, accounts.household_points(household.id))})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/pay-code/status.json")
@resident_required
def pay_code_status():
    """What became of the code the phone shows (``?id=``): ``valid``, ``spent`` (a sale used it) or
    ``expired``, with the household's points now. The page polls it to show the balance after a sale."""
    user, resident, household = _me()
    state = shop.pay_code_state(user, request.args.get("id", type=int) or 0)
    response = jsonify({"state": state, "points": ledger.balance(db.session, accounts.household_points(household.id))})
    response.headers["Cache-Control"] = "no-store"
    return response


# --- claims ---------------------------------------------------------------------------------------

def _rules_in_force(community_id: int):
    rules = db.session.execute(
        select(Rule).where(Rule.community_id == community_id).order_by(Rule.code)).scalars().all()
    listed = []
    for rule in rules:
        version = earning.version_at(rule)
        if version is not None and version.active:
            listed.append((rule, version))
    order = {c: i for i, c in enumerate(("volunteer", "red", "moral", "neighbour_help"))}
    listed.sort(key=lambda pair: (order.get(pair[1].category, 9), pair[1].title))
    return listed


@bp.route("/claims", methods=["GET", "POST"])
@resident_required
def claims():
    user, resident, household = _me()
    if request.method == "POST":
        back = url_for(".claims")
        try:
            if not take_form_key():
                return replay_form(back)
            claim = earning.create_claim(user, household.community, request.form.get("rule_code", ""),
                                         resident.id, note=(request.form.get("note") or "").strip()[:500])
        except DomainError as exc:
            _refused(exc)
            return redirect(back)
        if claim.status == "posted":
            said = _("Claim sent and approved: %(points)d points credited.", points=claim.points)
        elif claim.status == "publicized":
            said = _("Claim sent and approved; it is on the notice board until %(day)s.",
                     day=claim.publicity_ends_at and _day(claim.publicity_ends_at))
        else:
            said = _("Claim sent. A reviewer will look at it.")
        return form_done(back, said)
    mine = db.session.execute(
        select(Claim).where(Claim.household_id == household.id).order_by(Claim.id.desc()).limit(12)).scalars().all()
    return render_template("resident/claims.html", rules=_rules_in_force(household.community_id), claims=mine,
                           household=household)


def _day(moment) -> str:

    return local_date(moment)


# --- tasks and teams (组队) --------------------------------------------------------------------------

@bp.route("/tasks", methods=["GET", "POST"])
@resident_required
def tasks():
    """The tasks that are open or coming, with their teams: form a household team (以户为单位) or a
    group, join one, leave it, or (the leader of a household team) add kin."""
    user, resident, household = _me()
    back = url_for(".tasks")
    if request.method == "POST":
        action = request.form.get("action")
        try:
            if not take_form_key():
                return replay_form(back)
            if action == "form":
                task = task_ops.visible_task(user, request.form.get("task_id", type=int) or 0)
                kind = "household" if request.form.get("kind") == "household" else "group"
                team = teams.create_team(user, task, kind, (request.form.get("name") or "").strip()[:100] or None)
                message = _("Team “%(name)s” formed for “%(task)s”.", name=team.name, task=task.title)
            elif action in ("join", "leave", "add"):
                team = teams.visible_team(user, request.form.get("team_id", type=int) or 0)
                name = team.name
                someone = request.form.get("resident_id", type=int) if action == "add" else None
                if action == "leave":
                    teams.leave_team(user, team)
                    message = _("You left the team “%(name)s”.", name=name)
                else:
                    teams.join_team(user, team, someone)
                    message = _("Added to the team “%(name)s”.", name=name)
            else:
                db.session.rollback()
                return redirect(back)
        except DomainError as exc:
            _refused(exc)
            return redirect(back)
        return form_done(back, message)
    moment = utc_naive()
    listed = db.session.execute(
        select(Task).where(Task.community_id == household.community_id, Task.ends_at > moment)
        .order_by(Task.starts_at, Task.id).limit(20)).scalars().all()
    rows = []
    for task in listed:
        task_teams = [teams.team_view(user, team) for team in teams.teams_of(task)]
        mine = next((t for t in task_teams if t["members"] is not None), None)
        in_teams = {m["resident_id"] for t in task_teams if t["members"] for m in t["members"]}
        done = teams.checkins_of(task, [m.id for m in household.members])
        rows.append({
            "task": task, "version": earning.version_at(task.rule), "teams": task_teams, "mine": mine,
            "left": max(0, task.slots - task_ops.checked_in(task)), "checked_in": resident.id in done,
            "household_team": next((t for t in task_teams if t["household_id"] == household.id), None),
            # Kin the leader of the household team may add: free and not checked in.
            "kin": [m for m in household.members if m.active and m.id not in in_teams and m.id not in done],
        })
    return render_template("resident/tasks.html", rows=rows, resident=resident, household=household,
                           moment=moment)


# --- neighbour help -------------------------------------------------------------------------------

@bp.route("/help", methods=["GET", "POST"])
@resident_required
def help_requests():
    user, resident, household = _me()
    if request.method == "POST":
        action = request.form.get("action")
        try:
            if not take_form_key():
                return replay_form(url_for(".help_requests"))
            if action == "post":
                minutes = request.form.get("minutes", type=int)
                title = (request.form.get("title") or "").strip()
                if not title or not minutes or not 1 <= minutes <= 24 * 60:
                    db.session.rollback()
                    flash(_("Say what help you need and for how long."), "error")
                    return redirect(url_for(".help_requests"))
                hours.create_help_request(user, resident.id, title[:200], minutes)
                message = _("Your request is posted. Neighbours can now offer help.")
            elif action in ("accept", "complete"):
                request_id = request.form.get("request_id", type=int)
                help_request = hours.visible_help_request(user, request_id or 0)
                if action == "accept":
                    hours.accept_help_request(user, help_request, resident.id)
                    message = _("Thank you! You are the helper for: %(title)s", title=help_request.title)
                else:
                    if help_request.requester_id == resident.id and hours.needs_staff_confirmation(help_request):
                        db.session.rollback()
                        flash(_("Not done: %(reason)s", reason=_(
                            "help paid by the community pool is confirmed by the grid worker or the committee.")),
                            "error")
                        return redirect(url_for(".help_requests"))
                    hours.complete_help_request(user, help_request)
                    message = _("Confirmed. %(time)s went to %(name)s.",
                                time=_hours(help_request.minutes), name=help_request.volunteer.name)
            else:
                db.session.rollback()
                return redirect(url_for(".help_requests"))
        except DomainError as exc:
            _refused(exc)
            return redirect(url_for(".help_requests"))
        return form_done(url_for(".help_requests"), message)
    members = [m.id for m in household.members]
    open_requests = db.session.execute(
        select(HelpRequest).where(HelpRequest.community_id.in_(hours.help_communities(resident)),
                                  HelpRequest.status == "open", HelpRequest.requester_id.not_in(members))
        .order_by(HelpRequest.id.desc()).limit(30)).scalars().all()
    ours = db.session.execute(
        select(HelpRequest).where(or_(HelpRequest.requester_id.in_(members), HelpRequest.volunteer_id.in_(members)))
        .order_by(HelpRequest.id.desc()).limit(30)).scalars().all()
    minutes = ledger.balance(db.session, accounts.resident_minutes(resident.id))
    return render_template("resident/help.html", open_requests=open_requests, ours=ours, members=members,
                           resident=resident, household=household, minutes=minutes,
                           staff_confirms=hours.needs_staff_confirmation)


def _hours(minutes: int) -> str:

    return hours_text(minutes)


# --- gifts of minutes -----------------------------------------------------------------------------

@bp.route("/gift", methods=["GET", "POST"])
@resident_required
def gift():
    user, resident, household = _me()
    if request.method == "POST":
        minutes = form_number(request.form.get("minutes"))
        target = request.form.get("to", "")
        if not isinstance(minutes, int) or TransferIn().validate({"minutes": minutes}, partial=True):
            flash(_("Choose how many minutes to give."), "error")
            return redirect(url_for(".gift"))
        try:
            if not take_form_key():
                return replay_form(url_for(".gift"))
            if target == "pool":
                hours.transfer(user, resident.id, minutes, to_pool=True)
                message = _("You gave %(time)s to the community pool. Thank you!", time=_hours(minutes))
            else:
                receiver = db.session.get(Resident, int(target)) if target.isdigit() else None
                hours.transfer(user, resident.id, minutes, to_resident_id=receiver.id if receiver else -1)
                message = _("You gave %(time)s to %(name)s.", time=_hours(minutes), name=receiver.name)
        except DomainError as exc:
            _refused(exc)
            return redirect(url_for(".gift"))
        return form_done(url_for(".gift"), message)
    minutes = ledger.balance(db.session, accounts.resident_minutes(resident.id))
    kin = [m for m in household.members if m.id != resident.id]
    return render_template("resident/gift.html", minutes=minutes, kin=kin, resident=resident)


# --- the supermarket's goods ----------------------------------------------------------------------

@bp.get("/shop")
@resident_required
def goods():
    user, resident, household = _me()
    shop.require_browse(user, household.community_id)
    listed = db.session.execute(
        select(Item).where(Item.community_id == household.community_id, Item.active.is_(True))
        .order_by(Item.on_hand == 0, Item.price_points, Item.name)).scalars().all()
    partners = {p.id: p for p in shop_partners.partners(household.community_id, active_only=True)}
    # Goods and services of the supermarket and of open partner shops; a service with its places left today.
    sold = [i for i in listed if i.partner_id is None or i.partner_id in partners]
    items = [i for i in sold if not i.is_service]
    services = [(i, shop.places_left_today(i)) for i in sold if i.is_service]
    points = ledger.balance(db.session, accounts.household_points(household.id))
    return render_template("resident/shop.html", items=items, services=services, partners=partners, points=points,
                           household=household)


def init_app(app) -> None:
    app.register_blueprint(bp)
