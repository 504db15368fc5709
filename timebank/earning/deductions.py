"""Deductions (扣分项) for breaking the village rules, and the committee's ranking settings (红黑榜).

Domain rules, each findable by its word:

* deduction items: items of the community's points list with negative points (:class:`DeductionItem`),
  written by its committee. A deduction copies the item's points when it is entered, so a change of
  the item never rewrites a deduction.
* deduction flow: a committee member or grid worker enters a deduction against a household
  (``pending``); the committee reviews it: rejects it with a reason, or approves it -> ``publicized``
  until ``publicity_ends_at`` (the notice board shows it; anyone of the community, the household
  first, may object: back to ``pending``) -> ``applied`` (the ``close_deduction_publicity`` job).
  ``publicity_days: 0`` applies at once.
* self_approval: nobody approves or rejects a deduction of their own household, nor approves one
  they entered themselves (the same person, whatever login).
* never below zero: applying takes what the wallet holds, at most the deduction
  (``wallet_points``): one ledger transaction of kind ``deduction`` from the household's wallet to
  the community's deductions account, idempotency key ``deduction:<id>:apply``, so a deduction is
  applied once however often the job runs. The balance is read under the ledger's writer lock, so no
  sale can slip in between. What the wallet could not cover (``ranking_points``) counts against the
  household's ranking score only: it is not a debt, and later earnings are not taken for it.
* ranking score (积分榜): what a household earned in a period (claims and honours, less reversals)
  less the full points of its deductions applied in the period; kept apart from the spendable
  balance (computed in :mod:`timebank.reports.operations`).
* black list: the committee chooses whether the public board shows the black list
  (:class:`RankingSettings`, ``publish_black_list``; not shown until it says so).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

import ledger
import ledger.core
from timebank.core import accounts, ledgering
from timebank.core.audit_log import record
from timebank.core.clock import utc_naive
from timebank.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from timebank.core.extensions import db
from timebank.core.jobs import JobRun
from timebank.core.policy import in_community, require_community, require_person
from timebank.core.users import User, same_person
from timebank.earning.models import Deduction, DeductionEvent, DeductionItem, RankingSettings
from timebank.people.models import Community, Household, Resident

#: Who writes the deduction items, approves and rejects deductions, and sets the rankings.
DECIDERS = ("committee",)
#: Who enters a deduction (reports a breach).
ENTERING_STAFF = ("committee", "grid_worker")
ITEM_FIELDS = ("title", "points", "publicity_days", "active")


# --- deduction items ------------------------------------------------------------------------------

def _check_item(terms: dict) -> None:
    if terms.get("points") is not None and terms["points"] >= 0:
        raise ValidationFailed(errors={"points": ["A deduction item takes points: give a negative number."]})


def create_item(user: User, community: Community, code: str, title: str, points: int,
                publicity_days: int = 3) -> DeductionItem:
    require_community(user, community.id, *DECIDERS)
    _check_item({"points": points})
    if db.session.execute(select(DeductionItem.id).where(
            DeductionItem.community_id == community.id, DeductionItem.code == code)).first():
        raise Conflict(f"The deduction code {code!r} is taken in this community.", code="deduction_item_exists")
    item = DeductionItem(community_id=community.id, code=code, title=title, points=points,
                         publicity_days=publicity_days, active=True, created_by_user_id=user.id,
                         created_at=utc_naive())
    db.session.add(item)
    db.session.flush()
    record("deduction_item.create", user=user, target=f"deduction_item:{item.id}", community_id=community.id,
           code=code, title=title, points=points, publicity_days=publicity_days)
    return item


def change_item(user: User, item: DeductionItem, changes: dict) -> DeductionItem:
    require_community(user, item.community_id, *DECIDERS)
    changes = {k: v for k, v in changes.items() if k in ITEM_FIELDS and v is not None}
    _check_item(changes)
    for name, value in changes.items():
        setattr(item, name, value)
    db.session.flush()
    record("deduction_item.change", user=user, target=f"deduction_item:{item.id}", community_id=item.community_id,
           changes=changes)
    return item


def item_by_code(community_id: int, code: str) -> DeductionItem:
    item = db.session.execute(select(DeductionItem).where(
        DeductionItem.community_id == community_id, DeductionItem.code == code)).scalar_one_or_none()
    if item is None:
        raise NotFound(f"No deduction item with code {code!r} in this community.")
    return item


def visible_item(user: User, item_id: int) -> DeductionItem:
    item = db.session.get(DeductionItem, item_id)
    if item is None or not in_community(user, item.community_id):
        raise NotFound("No such deduction item.")
    return item


# --- deductions -----------------------------------------------------------------------------------

def _event(deduction: Deduction, action: str, user: User | None, reason: str | None = None) -> None:
    db.session.add(DeductionEvent(deduction_id=deduction.id, action=action, user_id=user.id if user else None,
                                  reason=reason, created_at=utc_naive()))


def _locked(deduction: Deduction) -> Deduction:
    db.session.refresh(deduction, with_for_update=True)
    return deduction


def _entered_by(user: User, deduction: Deduction) -> bool:
    if deduction.entered_by_user_id is None:
        return False
    if deduction.entered_by_user_id == user.id:
        return True
    enterer = db.session.get(User, deduction.entered_by_user_id)
    return enterer is not None and same_person(user, enterer)


def _decider(user: User, deduction: Deduction) -> None:
    require_community(user, deduction.community_id, *DECIDERS)
    require_person(user)
    if user.household_id is not None and user.household_id == deduction.household_id:
        raise Forbidden("Nobody decides a deduction of their own household.", code="self_approval")


def create_deduction(user: User, community: Community, item_code: str, household_id: int,
                     resident_id: int | None = None, note: str = "") -> Deduction:
    require_community(user, community.id, *ENTERING_STAFF)
    household = db.session.get(Household, household_id)
    if household is None or household.community_id != community.id:
        raise ValidationFailed(errors={"household_id": ["No such household in this community."]})
    if resident_id is not None:
        resident = db.session.get(Resident, resident_id)
        if resident is None or resident.household_id != household.id:
            raise ValidationFailed(errors={"resident_id": ["No such resident in this household."]})
    item = item_by_code(community.id, item_code)
    if not item.active:
        raise Conflict("This deduction item is not in force.", code="deduction_item_inactive")
    deduction = Deduction(community_id=community.id, item_id=item.id, household_id=household.id,
                          resident_id=resident_id, points=item.points, status="pending", note=note or "",
                          entered_by_user_id=user.id, created_at=utc_naive(), wallet_points=0, ranking_points=0)
    db.session.add(deduction)
    db.session.flush()
    _event(deduction, "create", user)
    record("deduction.enter", user=user, target=f"deduction:{deduction.id}", community_id=community.id,
           item=item.code, household_id=household.id, points=item.points)
    return deduction


def visible_deduction(user: User, deduction_id: int) -> Deduction:
    deduction = db.session.get(Deduction, deduction_id)
    if deduction is None:
        raise NotFound("No such deduction.")
    if user.role == "resident":
        if user.household_id != deduction.household_id:
            raise NotFound("No such deduction.")
    elif user.role != "admin" and user.community_id != deduction.community_id:
        raise NotFound("No such deduction.")
    return deduction


def approve_deduction(user: User, deduction: Deduction) -> Deduction:
    _decider(user, deduction)
    if _entered_by(user, deduction):
        raise Forbidden("Nobody approves a deduction they entered themselves.", code="self_approval")
    _locked(deduction)
    if deduction.status != "pending":
        raise Conflict(f"The deduction is {deduction.status}, not pending.", code="deduction_not_pending")
    moment = utc_naive()
    deduction.reviewed_by_user_id = user.id
    deduction.reviewed_at = moment
    _event(deduction, "approve", user)
    days = deduction.item.publicity_days
    if days > 0:
        deduction.status = "publicized"
        deduction.publicity_ends_at = moment + timedelta(days=days)
        db.session.flush()
    else:
        apply_deduction(deduction, actor=user.actor)
    record("deduction.approve", user=user, target=f"deduction:{deduction.id}", community_id=deduction.community_id,
           status=deduction.status, points=deduction.points)
    return deduction


def reject_deduction(user: User, deduction: Deduction, reason: str) -> Deduction:
    _decider(user, deduction)
    _locked(deduction)
    if deduction.status != "pending":
        raise Conflict(f"The deduction is {deduction.status}, not pending.", code="deduction_not_pending")
    deduction.status = "rejected"
    deduction.rejection_reason = reason
    deduction.reviewed_by_user_id = user.id
    deduction.reviewed_at = utc_naive()
    _event(deduction, "reject", user, reason)
    db.session.flush()
    record("deduction.reject", user=user, target=f"deduction:{deduction.id}", community_id=deduction.community_id,
           reason=reason)
    return deduction


def object_deduction(user: User, deduction_id: int, reason: str) -> Deduction:
    """Anyone of the community objects while the deduction is on the notice board: back to pending."""
    deduction = db.session.get(Deduction, deduction_id)
    if deduction is None or not in_community(user, deduction.community_id):
        raise NotFound("No such deduction.")
    if user.role == "supervisor":
        raise Forbidden("Supervisors read; they do not change anything.")
    _locked(deduction)
    if deduction.status != "publicized" or deduction.publicity_ends_at <= utc_naive():
        raise Conflict("Objections are taken only while the deduction is on the notice board.",
                       code="deduction_not_publicized")
    deduction.status = "pending"
    deduction.publicity_ends_at = None
    deduction.reviewed_by_user_id = None
    deduction.reviewed_at = None
    _event(deduction, "object", user, reason)
    db.session.flush()
    record("deduction.object", user=user, target=f"deduction:{deduction.id}", community_id=deduction.community_id,
           reason=reason)
    return deduction


def apply_deduction(deduction: Deduction, actor: str) -> Deduction:
    """Take the deduction from the wallet, never below zero: at most what it holds, under the ledger's
    writer lock; the rest counts against the ranking score. Once (``deduction:<id>:apply``)."""
    if deduction.status == "applied":
        return deduction
    wallet = accounts.household_points(deduction.household_id)
    sink = accounts.open_deductions(db.session, deduction.community_id)
    ledger.core.lock_writer(db.session)  # the balance read and the posting: no sale in between
    due = -deduction.points
    taken = min(due, max(ledger.balance(db.session, wallet), 0))
    if taken > 0:
        tx = ledgering.post(
            deduction.community_id, [ledger.Leg(wallet, -taken), ledger.Leg(sink, taken)],
            kind="deduction", category="deduction",
            memo=f"扣分：{deduction.item.title} · {deduction.household.name}", actor=actor,
            reference=f"deduction:{deduction.id}", idempotency_key=f"deduction:{deduction.id}:apply")
        deduction.transaction_id = tx.id
    deduction.wallet_points = taken
    deduction.ranking_points = due - taken
    deduction.status = "applied"
    deduction.applied_at = utc_naive()
    _event(deduction, "apply", None)
    db.session.flush()
    return deduction


def close_publicity(moment: datetime | None = None, run: JobRun | None = None) -> list[int]:
    """Apply every deduction whose publicity has ended. Returns their ids; safe to run twice."""
    moment = utc_naive(moment) if moment is not None else utc_naive()
    run = run if run is not None else JobRun("close_deduction_publicity")
    ids = db.session.execute(
        select(Deduction.id).where(Deduction.status == "publicized", Deduction.publicity_ends_at <= moment)
        .order_by(Deduction.id)).scalars().all()
    done = []
    for deduction_id in ids:
        due = False
        with run.item(f"deduction:{deduction_id}") as item:
            deduction = _locked(db.session.get(Deduction, deduction_id))
            due = deduction.status == "publicized" and deduction.publicity_ends_at <= moment
            if due:
                apply_deduction(deduction, actor="scheduler")
        if item.done and due:
            done.append(deduction_id)
    return done


def deductions_query(community_id: int, status: str | None = None, household_id: int | None = None):
    query = select(Deduction).where(Deduction.community_id == community_id)
    if status:
        query = query.where(Deduction.status == status)
    if household_id:
        query = query.where(Deduction.household_id == household_id)
    return query


# --- ranking settings (红黑榜) ----------------------------------------------------------------------

def publishes_black_list(community_id: int) -> bool:
    settings = db.session.get(RankingSettings, community_id)
    return bool(settings and settings.publish_black_list)


def set_black_list(user: User, community: Community, publish: bool) -> RankingSettings:
    """The committee chooses whether the public board shows the black list."""
    require_community(user, community.id, *DECIDERS)
    settings = db.session.get(RankingSettings, community.id)
    if settings is None:
        settings = RankingSettings(community_id=community.id)
        db.session.add(settings)
    settings.publish_black_list = bool(publish)
    settings.changed_by_user_id = user.id
    settings.changed_at = utc_naive()
    db.session.flush()
    record("ranking.settings", user=user, target=f"community:{community.id}", community_id=community.id,
           publish_black_list=bool(publish))
    return settings
