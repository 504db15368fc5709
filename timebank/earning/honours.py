"""Honours (荣誉: 文明家庭, 最美家庭, 美丽庭院): the honour list, awards after publicity (公示), the
half-yearly review (半年一审核) and withdrawal.

Domain rules, each findable by its word:

* honour list: each community keeps its own list (:class:`Honour`), written by its committee. An
  award copies the honour's points, term and review period when it is nominated, so a change of
  the list never rewrites an award.
* nomination: a committee member or grid worker nominates a household (评优评先); the award is
  ``pending``. A household holds one award of an honour at a time (409 ``honour_already_held``).
* award flow: ``pending`` -> the committee approves -> ``publicized`` until ``publicity_ends_at``
  (the notice board shows it, anyone of the community may object: back to ``pending``) -> ``held``
  (the ``close_honour_publicity`` job); or ``rejected`` with a reason. ``publicity_days: 0`` awards
  at once.
* self_approval: nobody approves, keeps or withdraws an award of their own household, nor approves
  one they nominated themselves (the same person, whatever login).
* honour points: an honour with points credits them once, when it is awarded: one ledger
  transaction of kind ``honour`` from the community's ``moral`` issuance account to the household's
  wallet, with the idempotency key ``honour_award:<id>:post``. Withdrawal does not take them back
  (they were earned for the time it was held; a deduction is the tool for a wrong).
* half-yearly review: the ``review_honours`` job (daily) puts each held award whose
  ``next_review_at`` has come up for review (``under_review``); the committee keeps it (held again,
  next review ``review_months`` later) or withdraws it, each by a decision with a reason. The job
  also ends awards whose term is over (``ended``).
* withdrawal: the committee withdraws a held award or one under review, with a reason, at any time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select

import ledger
from timebank.core import accounts, ledgering
from timebank.core.audit_log import record
from timebank.core.clock import local_zone, to_local, utc_naive
from timebank.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from timebank.core.extensions import db
from timebank.core.jobs import JobRun
from timebank.core.policy import in_community, require_community, require_person
from timebank.core.users import User, same_person
from timebank.earning.models import Honour, HonourAward, HonourEvent
from timebank.people.models import Community, Household

#: Who writes the honour list and decides awards and reviews.
DECIDERS = ("committee",)
#: Who nominates a household (评优评先).
NOMINATORS = ("committee", "grid_worker")
#: Awards that count as "held or on the way": a household has at most one of these per honour.
LIVE = ("pending", "publicized", "held", "under_review")
#: Awards the public board and the household's page show as held.
HOLDING = ("held", "under_review")
#: The category (and issuance account) honour points are drawn from.
CATEGORY = "moral"
HONOUR_FIELDS = ("title", "points", "publicity_days", "term_months", "review_months", "active")


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` (naive UTC) plus whole calendar months in local time; the day is kept, or the
    month's last day when it has fewer (31 Aug + 6 months = 28/29 Feb)."""
    local = to_local(moment)
    index = local.year * 12 + local.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    following = datetime(year + month // 12, month % 12 + 1, 1)
    last_day = (following - timedelta(days=1)).day
    shifted = local.replace(year=year, month=month, day=min(local.day, last_day), tzinfo=local_zone())
    return utc_naive(shifted)


# --- the honour list ------------------------------------------------------------------------------

def _check_honour(terms: dict) -> None:
    errors = {}
    if terms.get("points") is not None and terms["points"] < 0:
        errors["points"] = ["An honour carries no points or some; never negative (that is a deduction)."]
    for name in ("term_months", "review_months"):
        if terms.get(name) is not None and terms[name] < 1:
            errors[name] = ["At least one month."]
    if errors:
        raise ValidationFailed(errors=errors)


def create_honour(user: User, community: Community, code: str, title: str, points: int = 0,
                  publicity_days: int = 7, term_months: int = 12, review_months: int = 6) -> Honour:
    require_community(user, community.id, *DECIDERS)
    terms = dict(title=title, points=points, publicity_days=publicity_days, term_months=term_months,
                 review_months=review_months)
    _check_honour(terms)
    if db.session.execute(select(Honour.id).where(Honour.community_id == community.id, Honour.code == code)).first():
        raise Conflict(f"The honour code {code!r} is taken in this community.", code="honour_exists")
    honour = Honour(community_id=community.id, code=code, active=True, created_by_user_id=user.id,
                    created_at=utc_naive(), **terms)
    db.session.add(honour)
    db.session.flush()
    record("honour.create", user=user, target=f"honour:{honour.id}", community_id=community.id, code=code, **terms)
    return honour


def change_honour(user: User, honour: Honour, changes: dict) -> Honour:
    """Change the honour's terms from now on; awards already nominated keep what they copied."""
    require_community(user, honour.community_id, *DECIDERS)
    changes = {k: v for k, v in changes.items() if k in HONOUR_FIELDS and v is not None}
    _check_honour(changes)
    for name, value in changes.items():
        setattr(honour, name, value)
    db.session.flush()
    record("honour.change", user=user, target=f"honour:{honour.id}", community_id=honour.community_id,
           changes=changes)
    return honour


def honour_by_code(community_id: int, code: str) -> Honour:
    honour = db.session.execute(
        select(Honour).where(Honour.community_id == community_id, Honour.code == code)).scalar_one_or_none()
    if honour is None:
        raise NotFound(f"No honour with code {code!r} in this community.")
    return honour


def visible_honour(user: User, honour_id: int) -> Honour:
    honour = db.session.get(Honour, honour_id)
    if honour is None or not in_community(user, honour.community_id):
        raise NotFound("No such honour.")
    return honour


# --- awards ---------------------------------------------------------------------------------------

def _event(award: HonourAward, action: str, user: User | None, reason: str | None = None) -> None:
    db.session.add(HonourEvent(award_id=award.id, action=action, user_id=user.id if user else None,
                               reason=reason, created_at=utc_naive()))


def _locked(award: HonourAward) -> HonourAward:
    db.session.refresh(award, with_for_update=True)
    return award


def _own_household(user: User, award: HonourAward) -> bool:
    return user.household_id is not None and user.household_id == award.household_id


def _nominated_by(user: User, award: HonourAward) -> bool:
    """Whether the person behind ``user`` nominated the award (this login or another of theirs)."""
    if award.proposed_by_user_id is None:
        return False
    if award.proposed_by_user_id == user.id:
        return True
    nominator = db.session.get(User, award.proposed_by_user_id)
    return nominator is not None and same_person(user, nominator)


def _decider(user: User, award: HonourAward, what: str) -> None:
    require_community(user, award.community_id, *DECIDERS)
    require_person(user)
    if _own_household(user, award):
        raise Forbidden(f"Nobody {what} an honour of their own household.", code="self_approval")


def nominate(user: User, community: Community, honour_code: str, household_id: int, note: str = "") -> HonourAward:
    """评优评先: a committee member or grid worker nominates a household for an honour."""
    require_community(user, community.id, *NOMINATORS)
    household = db.session.get(Household, household_id)
    if household is None or household.community_id != community.id:
        raise ValidationFailed(errors={"household_id": ["No such household in this community."]})
    honour = honour_by_code(community.id, honour_code)
    if not honour.active:
        raise Conflict("This honour is no longer awarded.", code="honour_inactive")
    # One live award per household and honour; the household row serialises two nominations.
    db.session.execute(select(Household.id).where(Household.id == household.id).with_for_update())
    if db.session.execute(select(HonourAward.id).where(
            HonourAward.honour_id == honour.id, HonourAward.household_id == household.id,
            HonourAward.status.in_(LIVE))).first():
        raise Conflict("The household already holds this honour, or is nominated for it.",
                       code="honour_already_held")
    award = HonourAward(community_id=community.id, honour_id=honour.id, household_id=household.id,
                        status="pending", points=honour.points, term_months=honour.term_months,
                        review_months=honour.review_months, note=note or "", proposed_by_user_id=user.id,
                        created_at=utc_naive())
    db.session.add(award)
    db.session.flush()
    _event(award, "propose", user)
    record("honour.nominate", user=user, target=f"honour_award:{award.id}", community_id=community.id,
           honour=honour.code, household_id=household.id)
    return award


def visible_award(user: User, award_id: int) -> HonourAward:
    award = db.session.get(HonourAward, award_id)
    if award is None:
        raise NotFound("No such award.")
    if user.role == "resident":
        if user.household_id != award.household_id:
            raise NotFound("No such award.")
    elif user.role != "admin" and user.community_id != award.community_id:
        raise NotFound("No such award.")
    return award


def approve_award(user: User, award: HonourAward) -> HonourAward:
    """The committee approves a nomination: on the notice board for the honour's publicity days, or
    awarded at once when there are none."""
    _decider(user, award, "approves")
    if _nominated_by(user, award):
        raise Forbidden("Nobody approves a nomination they made themselves.", code="self_approval")
    _locked(award)
    if award.status != "pending":
        raise Conflict(f"The award is {award.status}, not pending.", code="award_not_pending")
    moment = utc_naive()
    award.approved_by_user_id = user.id
    award.approved_at = moment
    _event(award, "approve", user)
    days = award.honour.publicity_days
    if days > 0:
        award.status = "publicized"
        award.publicity_ends_at = moment + timedelta(days=days)
        db.session.flush()
    else:
        confer(award, actor=user.actor)
    record("honour.approve", user=user, target=f"honour_award:{award.id}", community_id=award.community_id,
           status=award.status, points=award.points)
    return award


def reject_award(user: User, award: HonourAward, reason: str) -> HonourAward:
    _decider(user, award, "rejects")
    _locked(award)
    if award.status != "pending":
        raise Conflict(f"The award is {award.status}, not pending.", code="award_not_pending")
    award.status = "rejected"
    award.rejection_reason = reason
    _event(award, "reject", user, reason)
    db.session.flush()
    record("honour.reject", user=user, target=f"honour_award:{award.id}", community_id=award.community_id,
           reason=reason)
    return award


def object_award(user: User, award_id: int, reason: str) -> HonourAward:
    """Anyone of the community objects while the award is on the notice board: back to pending."""
    award = db.session.get(HonourAward, award_id)
    if award is None or not in_community(user, award.community_id):
        raise NotFound("No such award.")
    if user.role == "supervisor":
        raise Forbidden("Supervisors read; they do not change anything.")
    _locked(award)
    if award.status != "publicized" or award.publicity_ends_at <= utc_naive():
        raise Conflict("Objections are taken only while the award is on the notice board.",
                       code="award_not_publicized")
    award.status = "pending"
    award.publicity_ends_at = None
    award.approved_by_user_id = None
    award.approved_at = None
    _event(award, "object", user, reason)
    db.session.flush()
    record("honour.object", user=user, target=f"honour_award:{award.id}", community_id=award.community_id,
           reason=reason)
    return award


def confer(award: HonourAward, actor: str) -> HonourAward:
    """Award the honour: held from now for its term, first review ``review_months`` on; its points,
    if any, credited once (ledger idempotency key ``honour_award:<id>:post``)."""
    if award.held_from is not None:
        return award  # awarded already: nothing twice
    moment = utc_naive()
    if award.points:
        tx = ledgering.post(
            award.community_id,
            [ledger.Leg(accounts.issuance_points(award.community_id, CATEGORY), -award.points),
             ledger.Leg(accounts.household_points(award.household_id), award.points)],
            kind="honour", category=CATEGORY, memo=f"荣誉：{award.honour.title} · {award.household.name}",
            actor=actor, reference=f"honour_award:{award.id}", idempotency_key=f"honour_award:{award.id}:post")
        award.transaction_id = tx.id
    award.status = "held"
    award.held_from = moment
    award.held_until = add_months(moment, award.term_months)
    award.next_review_at = add_months(moment, award.review_months)
    _event(award, "award", None)
    db.session.flush()
    return award


def close_publicity(moment: datetime | None = None, run: JobRun | None = None) -> list[int]:
    """Award every nomination whose publicity has ended. Returns their ids; safe to run twice."""
    moment = utc_naive(moment) if moment is not None else utc_naive()
    run = run if run is not None else JobRun("close_honour_publicity")
    ids = db.session.execute(
        select(HonourAward.id).where(HonourAward.status == "publicized", HonourAward.publicity_ends_at <= moment)
        .order_by(HonourAward.id)).scalars().all()
    done = []
    for award_id in ids:
        due = False
        with run.item(f"honour_award:{award_id}") as item:
            award = _locked(db.session.get(HonourAward, award_id))
            due = award.status == "publicized" and award.publicity_ends_at <= moment
            if due:
                confer(award, actor="scheduler")
        if item.done and due:
            done.append(award_id)
    return done


# --- the half-yearly review (半年一审核) ------------------------------------------------------------

def review_due(moment: datetime | None = None, run: JobRun | None = None) -> dict[str, list[int]]:
    """The ``review_honours`` job: end the held awards whose term is over, and put up for review the
    held ones whose review date has come. Safe to run twice (each acts on ``held`` awards only)."""
    moment = utc_naive(moment) if moment is not None else utc_naive()
    run = run if run is not None else JobRun("review_honours")
    ids = db.session.execute(
        select(HonourAward.id).where(or_(
            and_(HonourAward.status.in_(HOLDING), HonourAward.held_until <= moment),
            and_(HonourAward.status == "held", HonourAward.next_review_at <= moment)))
        .order_by(HonourAward.id)).scalars().all()
    out: dict[str, list[int]] = {"ended": [], "under_review": []}
    for award_id in ids:
        what = None
        with run.item(f"honour_award:{award_id}") as item:
            award = _locked(db.session.get(HonourAward, award_id))
            if award.status in HOLDING and award.held_until <= moment:
                award.status = "ended"
                award.next_review_at = None
                _event(award, "end", None)
                what = "ended"
            elif award.status == "held" and award.next_review_at is not None and award.next_review_at <= moment:
                award.status = "under_review"
                _event(award, "review", None)
                what = "under_review"
            db.session.flush()
        if item.done and what:
            out[what].append(award_id)
    return out


def keep_award(user: User, award: HonourAward, reason: str) -> HonourAward:
    """The committee keeps an award under review: held again, next review ``review_months`` from now."""
    _decider(user, award, "keeps")
    _locked(award)
    if award.status != "under_review":
        raise Conflict(f"The award is {award.status}, not under review.", code="award_not_under_review")
    award.status = "held"
    award.next_review_at = add_months(utc_naive(), award.review_months)
    _event(award, "keep", user, reason)
    db.session.flush()
    record("honour.keep", user=user, target=f"honour_award:{award.id}", community_id=award.community_id,
           reason=reason, next_review_at=award.next_review_at.isoformat())
    return award


def withdraw_award(user: User, award: HonourAward, reason: str) -> HonourAward:
    """The committee withdraws (撤销) a held award or one under review, with a reason."""
    _decider(user, award, "withdraws")
    _locked(award)
    if award.status not in HOLDING:
        raise Conflict(f"The award is {award.status}; only a held honour is withdrawn.", code="award_not_held")
    moment = utc_naive()
    award.status = "withdrawn"
    award.withdrawal_reason = reason
    award.withdrawn_by_user_id = user.id
    award.withdrawn_at = moment
    award.next_review_at = None
    _event(award, "withdraw", user, reason)
    db.session.flush()
    record("honour.withdraw", user=user, target=f"honour_award:{award.id}", community_id=award.community_id,
           reason=reason)
    return award


def awards_query(community_id: int, status: str | None = None, household_id: int | None = None):
    query = select(HonourAward).where(HonourAward.community_id == community_id)
    if status:
        query = query.where(HonourAward.status == status)
    if household_id:
        query = query.where(HonourAward.household_id == household_id)
    return query


def held_by(household_id: int) -> list[HonourAward]:
    """The honours a household holds now (held or under review), newest first."""
    return list(db.session.execute(
        select(HonourAward).where(HonourAward.household_id == household_id, HonourAward.status.in_(HOLDING))
        .order_by(HonourAward.held_from.desc(), HonourAward.id.desc())).scalars())
