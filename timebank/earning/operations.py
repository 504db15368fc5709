"""Earning points: the points list (积分细则), claims (申报), review, publicity (公示) and posting.

Domain rules, each findable by its word:

* versions: changing a rule adds a :class:`RuleVersion` effective from its date; a claim copies the
  points and minutes of the version in force when it is made, so history is never rewritten.
* status flow: ``pending`` -> approve -> ``publicized`` until ``publicity_ends_at`` -> ``posted``;
  or ``rejected``. ``review: auto`` skips ``pending``; ``publicity_days: 0`` skips ``publicized``.
  An objection during publicity sends the claim back to ``pending``.
* self_approval: nobody approves a claim of their own household (staff: via ``users.resident_id``), nor
  a claim they entered themselves (代录; by this login or another login of the same person, compared by
  ``users.person_key``); nobody takes back (reverses) a claim of their own household either.
* person_required: approving, rejecting and reversing need a login that belongs to a person (admin exempt).
* cap_exceeded: a rule's cap holds per household and local calendar period, in points and/or in
  minutes (``max_points``, ``max_minutes``), counting claims that are approved (publicized or posted).
  The household row is locked while counting (PostgreSQL; SQLite writers are serialised anyway), so
  two approvals at the same moment cannot both pass the cap.
* posting: one ledger transaction from the community's issuance account of the rule's category to the
  household's points wallet (a guest's claim: the person's guest wallet there, :func:`points_wallet`)
  (and minutes from the minutes issuance account to the resident, the
  excess over the stored-hours cap to the pool), with the idempotency key ``claim:<id>:post``, so a
  claim can never be posted twice.
* notices: the claimant is told (:mod:`timebank.notices`, in the same transaction) when a reviewer
  approves or rejects their claim, when someone objects to it, and when its publicity ends and the
  points are credited.
* reversal (撤销): the committee takes back a posted claim with a reason (:func:`reverse_claim`): one
  ``claim_reversal`` ledger transaction negating every posting of the claim's (``reverses_id``; the
  ledger allows one reversal per transaction), and a :class:`ClaimReversal` row (one per claim).
  Refused: 409 ``already_reversed``, ``claim_not_posted``, ``insufficient_points`` (the household has
  spent them), ``insufficient_hours`` (the resident has spent the minutes).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from sqlalchemy import func, inspect, select
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

import ledger
from timebank.core import accounts, ledgering
from timebank.core.audit_log import record
from timebank.core.clock import local_zone, to_local, utc_naive
from timebank.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from timebank.core.extensions import db
from timebank.core.jobs import JobRun
from timebank.core.policy import can_see_community, in_community, require_community, require_person
from timebank.core.users import User, same_person
from timebank.earning.models import Claim, ClaimEvent, ClaimReversal, Rule, RuleVersion, Task
from timebank.hours.operations import minute_legs
from timebank.notices.operations import notify_resident
from timebank.people.models import Community, Household, Resident

#: Who writes the points list.
RULE_WRITERS = ("committee",)
#: Who reviews claims (评议): committee members and grid workers.
REVIEWERS = ("committee", "grid_worker")
#: Staff who may enter a claim for a resident (代录).
ENTERING_STAFF = ("committee", "grid_worker")
#: Statuses whose points count against a cap (a reversed claim does not: its points were taken back).
COUNTED = ("publicized", "posted")
#: Who takes back a posted claim (撤销).
REVERSERS = ("committee",)


# --- the points list ------------------------------------------------------------------------------

def rule_by_code(community_id: int, code: str) -> Rule:
    rule = db.session.execute(
        select(Rule).where(Rule.community_id == community_id, Rule.code == code)).scalar_one_or_none()
    if rule is None:
        raise NotFound(f"No rule with code {code!r} in this community.")
    return rule


def _in_force(rule_id, moment: datetime | None):
    """The version of the rule ``rule_id`` (an id, or a column to correlate) in force at ``moment``
    (naive UTC; default now), as a query."""
    moment = utc_naive(moment) if moment is not None else utc_naive()
    return (select(RuleVersion).where(RuleVersion.rule_id == rule_id, RuleVersion.effective_from <= moment)
            .order_by(RuleVersion.effective_from.desc(), RuleVersion.number.desc()).limit(1))


def version_at(rule: Rule, moment: datetime | None = None) -> RuleVersion | None:
    """The version of ``rule`` in force at ``moment`` (naive UTC; default now)."""
    return db.session.execute(_in_force(rule.id, moment)).scalar_one_or_none()


def rule_in_force(community_id: int, code: str, moment: datetime | None = None) -> tuple[Rule, RuleVersion | None]:
    """:func:`rule_by_code` and :func:`version_at` in one statement: the rule and its version in force."""
    in_force = _in_force(Rule.id, moment).with_only_columns(RuleVersion.id).correlate(Rule).scalar_subquery()
    found = db.session.execute(
        select(Rule, RuleVersion).outerjoin(RuleVersion, RuleVersion.id == in_force)
        .where(Rule.community_id == community_id, Rule.code == code)).first()
    if found is None:
        raise NotFound(f"No rule with code {code!r} in this community.")
    return found[0], found[1]


def latest_version(rule: Rule) -> RuleVersion:
    return db.session.execute(
        select(RuleVersion).where(RuleVersion.rule_id == rule.id).order_by(RuleVersion.number.desc()).limit(1)
    ).scalar_one()


def _check_terms(terms: dict) -> None:
    errors = {}
    if terms["points"] + terms["minutes"] <= 0:
        errors["points"] = ["A rule is worth some points or minutes."]
    cap = terms.get("cap")
    if cap:
        limits = [(cap.get("max_points"), terms["points"]), (cap.get("max_minutes"), terms["minutes"])]
        if all(limit is None for limit, _one in limits):
            errors["cap"] = ["A cap limits points, minutes or both."]
        elif any(limit is not None and limit < one for limit, one in limits):
            errors["cap"] = ["The cap is smaller than one claim."]
    if errors:
        raise ValidationFailed(errors=errors)


def _version(rule: Rule, number: int, terms: dict, user: User | None, effective_from: datetime) -> RuleVersion:
    cap = terms.get("cap")
    version = RuleVersion(
        rule_id=rule.id, number=number, title=terms["title"], category=terms["category"],
        points=terms["points"], minutes=terms["minutes"], review=terms["review"],
        publicity_days=terms["publicity_days"], active=terms.get("active", True),
        cap_period=cap["period"] if cap and cap.get("max_points") is not None else None,
        cap_max_points=cap.get("max_points") if cap else None,
        cap_minutes_period=cap["period"] if cap and cap.get("max_minutes") is not None else None,
        cap_max_minutes=cap.get("max_minutes") if cap else None,
        effective_from=effective_from, created_by_user_id=user.id if user else None,
    )
    db.session.add(version)
    db.session.flush()
    return version


def create_rule(user: User, community: Community, code: str, title: str, category: str, points: int,
                review: str, minutes: int = 0, publicity_days: int = 0, cap: dict | None = None) -> Rule:
    require_community(user, community.id, *RULE_WRITERS)
    terms = dict(title=title, category=category, points=points, minutes=minutes or 0, review=review,
                 publicity_days=publicity_days or 0, cap=cap)
    _check_terms(terms)
    if db.session.execute(select(Rule.id).where(Rule.community_id == community.id, Rule.code == code)).first():
        raise Conflict(f"The rule code {code!r} is taken in this community.", code="rule_exists")
    rule = Rule(community_id=community.id, code=code)
    db.session.add(rule)
    db.session.flush()
    _version(rule, 1, terms, user, utc_naive())
    record("rule.create", user=user, target=f"rule:{rule.id}", community_id=community.id, code=code,
           **{k: v for k, v in terms.items()})
    return rule


def change_rule(user: User, rule: Rule, changes: dict, effective_from: datetime | None = None) -> RuleVersion:
    """Add a version with ``changes`` over the latest terms, in force from ``effective_from`` (default now)."""
    require_community(user, rule.community_id, *RULE_WRITERS)
    current = latest_version(rule)
    terms = dict(title=current.title, category=current.category, points=current.points, minutes=current.minutes,
                 review=current.review, publicity_days=current.publicity_days, active=current.active,
                 cap=current.cap)
    terms.update({k: v for k, v in changes.items() if k in terms})
    _check_terms(terms)
    moment = utc_naive(effective_from) if effective_from is not None else utc_naive()
    if moment < utc_naive() or moment < current.effective_from:
        raise ValidationFailed(errors={"effective_from": ["A change applies from now or later, never to the past."]})
    version = _version(rule, current.number + 1, terms, user, moment)
    record("rule.change", user=user, target=f"rule:{rule.id}", community_id=rule.community_id,
           version=version.number, effective_from=moment.isoformat(), changes=changes)
    return version


def visible_rule(user: User, rule_id: int) -> Rule:
    rule = db.session.get(Rule, rule_id)
    if rule is None or not in_community(user, rule.community_id):
        raise NotFound("No such rule.")
    return rule


# --- claims ---------------------------------------------------------------------------------------

def _event(claim: Claim, action: str, user: User | None, reason: str | None = None) -> None:
    event = ClaimEvent(claim_id=claim.id, action=action, user_id=user.id if user else None, reason=reason,
                       created_at=utc_naive())
    db.session.add(event)
    if "events" not in inspect(claim).unloaded:  # a history already read (a new claim's) stays whole
        set_committed_value(claim, "events", [*claim.events, event])


def _tell(claim: Claim, event: str, **facts) -> None:
    """Tell the claimant what happened to their claim (a notice, in this transaction)."""
    notify_resident(claim.resident_id, event, {"claim_id": claim.id, "title": claim.rule_version.title, **facts},
                    household_id=claim.household_id)


def period_bounds(period: str, moment: datetime) -> tuple[datetime, datetime]:
    """The local calendar day/week (Monday first)/month/year containing ``moment``, as naive UTC bounds."""
    local = to_local(moment)
    day = local.date()
    if period == "day":
        start, end = day, day + timedelta(days=1)
    elif period == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    elif period == "month":
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    elif period == "year":
        start, end = day.replace(month=1, day=1), day.replace(year=day.year + 1, month=1, day=1)
    else:  # pragma: no cover - the schema allows nothing else
        raise ValueError(period)
    zone = local_zone()
    return (utc_naive(datetime.combine(start, time(), zone)), utc_naive(datetime.combine(end, time(), zone)))


def _check_cap(claim: Claim) -> None:
    """cap_exceeded: in points (``max_points``) and in minutes (``max_minutes``), whichever the rule sets,
    so a rule worth only minutes cannot be claimed without end."""
    version = claim.rule_version
    cap = version.cap
    if not cap:
        return
    # Serialise approvals for one household (PostgreSQL; on SQLite writers are serialised already).
    db.session.execute(select(Household.id).where(Household.id == claim.household_id).with_for_update())
    start, end = period_bounds(cap["period"], claim.created_at)
    points, minutes = db.session.execute(
        select(func.coalesce(func.sum(Claim.points), 0), func.coalesce(func.sum(Claim.minutes), 0)).where(
            Claim.household_id == claim.household_id, Claim.rule_id == claim.rule_id,
            Claim.status.in_(COUNTED), not_reversed(), Claim.created_at >= start, Claim.created_at < end,
            Claim.id != claim.id)
    ).one()
    for used, this, limit, unit in ((points, claim.points, cap["max_points"], "points"),
                                    (minutes, claim.minutes, cap["max_minutes"], "minutes")):
        if limit is not None and used + this > limit:
            raise Conflict(
                f"The household has {used} of {limit} {unit} for this item this {cap['period']}; "
                "this claim would pass the cap.", code="cap_exceeded")


def _approve(claim: Claim, user: User | None) -> None:
    """Count the claim against its cap, then publish it, or post it at once when there is no publicity."""
    _check_cap(claim)
    moment = utc_naive()
    claim.reviewed_by_user_id = user.id if user else None
    claim.reviewed_at = moment
    days = claim.rule_version.publicity_days
    if days > 0:
        claim.status = "publicized"
        claim.publicity_ends_at = moment + timedelta(days=days)
        db.session.flush()
    else:
        post_claim(claim, actor=user.actor if user else "system")


def create_claim(user: User, community: Community, rule_code: str, resident_id: int, note: str = "",
                 task: Task | None = None, team_leader: bool = False) -> Claim:
    """A resident claims for themselves; committee or grid worker may enter a claim for any resident (代录).

    ``team_leader``: the claim of a team member checked in by the team's leader (the caller,
    :func:`timebank.earning.teams.check_in_team`, has checked that ``user`` leads the member's team)."""
    # The resident with their household, in one statement (the membership check reads both).
    resident = db.session.get(Resident, resident_id, options=[joinedload(Resident.household)])
    # A guest of the community (候鸟, 流动党员) claims here until their membership ends.
    if resident is None or not resident.belongs_to(community.id):
        raise ValidationFailed(errors={"resident_id": ["No such resident in this community."]})
    if user.role == "resident":
        if user.resident_id != resident.id and not (team_leader and task is not None):
            raise Forbidden("A resident claims for themselves; staff may enter a claim for them.")
    else:
        require_community(user, community.id, *ENTERING_STAFF)
    if not resident.active:
        raise Conflict("This resident has left; nothing more is claimed for them.", code="resident_inactive")
    # A task's claim is for the task's rule, which the caller has loaded already.
    if task is not None and task.rule.code == rule_code:
        rule, version = task.rule, version_at(task.rule)
    else:
        rule, version = rule_in_force(community.id, rule_code)
    if version is None or not version.active:
        raise Conflict("This item of the points list is not in force.", code="rule_inactive")
    # The answer names the rule and its community: the new claim holds both, so that neither is
    # read again (the session keeps only what something refers to).
    if rule.community_id == community.id:
        set_committed_value(rule, "community", community)
    claim = Claim(community_id=community.id, rule=rule, rule_version=version, resident_id=resident.id,
                  household_id=resident.household_id, points=version.points, minutes=version.minutes,
                  status="pending", note=note or "", entered_by_user_id=user.id,
                  guest=resident.household.community_id != community.id,
                  entered_for_resident=user.role != "resident", task_id=task.id if task else None,
                  created_at=utc_naive())
    db.session.add(claim)
    db.session.flush()
    set_committed_value(claim, "reversal", None)  # a new claim was never taken back
    set_committed_value(claim, "events", [])  # nor has a history yet: the answer's is what _event adds
    _event(claim, "create", user)
    if version.review == "auto":
        _approve(claim, None)
    else:
        # Refuse early what could never be approved; approval checks again.
        _check_cap(claim)
    if claim.entered_for_resident:
        record("claim.enter", user=user, target=f"claim:{claim.id}", community_id=community.id,
               resident_id=resident.id, rule=rule.code)
    return claim


def visible_claim(user: User, claim_id: int, lock: bool = False) -> Claim:
    """The claim, if ``user`` may see it. ``lock``: its row locked for the rest of the transaction
    (PostgreSQL), read with its rule (and the rule's community), version and resident in the one
    statement: what a decision on it goes on to read (pass ``locked=True`` to the decision)."""
    if lock:
        claim = db.session.execute(
            select(Claim).where(Claim.id == claim_id)
            .options(joinedload(Claim.rule_version, innerjoin=True), joinedload(Claim.resident, innerjoin=True),
                     joinedload(Claim.rule, innerjoin=True).joinedload(Rule.community, innerjoin=True))
            .with_for_update(of=Claim).execution_options(populate_existing=True)
        ).scalar_one_or_none()
    else:
        claim = db.session.get(Claim, claim_id)
    if claim is None:
        raise NotFound("No such claim.")
    if user.role == "resident":
        if user.household_id != claim.household_id:
            raise NotFound("No such claim.")
    elif not can_see_community(user, claim.community_id):
        raise NotFound("No such claim.")
    return claim


def _locked(claim: Claim) -> Claim:
    db.session.refresh(claim, with_for_update=True)
    return claim


def _entered_by(user: User, claim: Claim) -> bool:
    """Whether ``user`` entered the claim: this login, or another login of the same person (the same
    ``person_key``: phone, or resident record)."""
    if claim.entered_by_user_id is None:
        return False
    if claim.entered_by_user_id == user.id:
        return True
    enterer = db.session.get(User, claim.entered_by_user_id)
    if enterer is None:
        return False
    if same_person(user, enterer):
        return True
    return user.resident_id is not None and enterer.resident_id == user.resident_id


def own_household(user: User, claim: Claim) -> bool:
    """self_approval: whether the claim is of the household of the person behind ``user``."""
    return user.household_id is not None and user.household_id == claim.household_id


def not_reversed():
    """A condition on :class:`Claim`: it was not taken back."""
    return ~select(ClaimReversal.id).where(ClaimReversal.claim_id == Claim.id).exists()


def approve_visible_claim(user: User, claim_id: int) -> Claim:
    """Approve the claim ``claim_id`` if ``user`` may see it (the API's and the page's approval): read
    locked, with what the approval reads next (PostgreSQL: one statement, not five)."""
    return approve_claim(user, visible_claim(user, claim_id, lock=True), locked=True)


def approve_claim(user: User, claim: Claim, locked: bool = False) -> Claim:
    """``locked``: the claim was read locked in this transaction (:func:`visible_claim` with ``lock``)."""
    require_community(user, claim.community_id, *REVIEWERS)
    require_person(user)
    if own_household(user, claim):
        raise Forbidden("Nobody approves a claim of their own household.", code="self_approval")
    if _entered_by(user, claim):
        raise Forbidden("Nobody approves a claim they entered themselves (代录).", code="self_approval")
    if not locked:
        _locked(claim)
    if claim.status != "pending":
        raise Conflict(f"The claim is {claim.status}, not pending.", code="claim_not_pending")
    set_committed_value(claim, "reversal", None)  # only a posted claim is ever taken back
    _event(claim, "approve", user)
    _approve(claim, user)
    _tell(claim, "claim_approved", points=claim.points, minutes=claim.minutes,
          publicity_ends_at=claim.publicity_ends_at.isoformat() if claim.status == "publicized" else None)
    record("claim.approve", user=user, target=f"claim:{claim.id}", community_id=claim.community_id,
           points=claim.points, minutes=claim.minutes, status=claim.status)
    return claim


def reject_claim(user: User, claim: Claim, reason: str) -> Claim:
    require_community(user, claim.community_id, *REVIEWERS)
    require_person(user)
    _locked(claim)
    if claim.status != "pending":
        raise Conflict(f"The claim is {claim.status}, not pending.", code="claim_not_pending")
    claim.status = "rejected"
    claim.rejection_reason = reason
    claim.reviewed_by_user_id = user.id
    claim.reviewed_at = utc_naive()
    _event(claim, "reject", user, reason)
    db.session.flush()
    _tell(claim, "claim_rejected", reason=reason)
    record("claim.reject", user=user, target=f"claim:{claim.id}", community_id=claim.community_id, reason=reason)
    return claim


def object_claim(user: User, claim_id: int, reason: str) -> Claim:
    """Anyone of the community (resident or writing staff) objects during publicity: back to pending."""
    claim = db.session.get(Claim, claim_id)
    if claim is None or not in_community(user, claim.community_id):
        raise NotFound("No such claim.")
    if user.role == "supervisor":
        raise Forbidden("Supervisors read; they do not change anything.")
    _locked(claim)
    if claim.status != "publicized" or claim.publicity_ends_at <= utc_naive():
        raise Conflict("Objections are taken only while the claim is on the notice board.",
                       code="claim_not_publicized")
    claim.status = "pending"
    claim.publicity_ends_at = None
    claim.reviewed_by_user_id = None
    claim.reviewed_at = None
    _event(claim, "object", user, reason)
    db.session.flush()
    _tell(claim, "claim_objected", reason=reason)
    record("claim.object", user=user, target=f"claim:{claim.id}", community_id=claim.community_id, reason=reason)
    return claim


def points_wallet(claim: Claim) -> str:
    """Where a claim's points go: the household's wallet; a guest's claim (the resident's household is of
    another community, ``claims.guest``) goes to the person's guest wallet in the claim's community."""
    if claim.guest:
        return accounts.guest_points(claim.resident_id, claim.community_id)
    return accounts.household_points(claim.household_id)


def post_claim(claim: Claim, actor: str) -> Claim:
    """Credit the claim: one ledger transaction, at most once (idempotency key ``claim:<id>:post``)."""
    version = claim.rule_version
    resident = claim.resident
    legs = []
    if claim.points:
        legs += [ledger.Leg(accounts.issuance_points(claim.community_id, version.category), -claim.points),
                 ledger.Leg(points_wallet(claim), claim.points)]
    if claim.minutes:
        community = db.session.get(Community, claim.community_id)
        legs += minute_legs(resident, community, claim.minutes, accounts.issuance_minutes(claim.community_id))
    tx = ledgering.post(
        claim.community_id, legs, kind="claim", category=version.category,
        memo=f"{version.title} · {resident.name} (resident:{resident.id})", actor=actor,
        reference=f"claim:{claim.id}", idempotency_key=f"claim:{claim.id}:post")
    claim.status = "posted"
    claim.transaction_id = tx.id
    claim.posted_at = utc_naive()
    _event(claim, "post", None)
    db.session.flush()
    return claim


def reverse_claim(user: User, claim: Claim, reason: str) -> ClaimReversal:
    """Take back a posted claim (committee of its community, not of its household): a compensating
    ``claim_reversal`` transaction from the household's wallet (and the resident's minutes) back to
    where they came from. Once per claim; two at the same moment: one wins, the other is 409."""
    require_community(user, claim.community_id, *REVERSERS)
    require_person(user)
    if own_household(user, claim):
        raise Forbidden("Nobody takes back a claim of their own household.", code="self_approval")
    _locked(claim)  # PostgreSQL: a second reversal waits here, then finds the first one's row
    if db.session.execute(select(ClaimReversal.id).where(ClaimReversal.claim_id == claim.id)).first():
        raise Conflict("This claim was already taken back.", code="already_reversed")
    if claim.status != "posted":
        raise Conflict(f"The claim is {claim.status}; only a posted claim is taken back.", code="claim_not_posted")
    version, resident = claim.rule_version, claim.resident
    try:
        tx = ledgering.reverse(
            claim.community_id, claim.transaction_id, kind="claim_reversal",
            memo=f"撤销积分：{version.title} · {resident.name}（原因：{reason}）",
            actor=user.actor, reference=f"claim:{claim.id}", idempotency_key=f"claim:{claim.id}:reverse")
    except ledger.AlreadyReversed as exc:
        raise Conflict("This claim was already taken back.", code="already_reversed") from exc
    except ledger.InsufficientFunds as exc:
        if exc.unit == "minutes":
            raise Conflict("The resident (or the pool) no longer holds the minutes this claim gave.",
                           code="insufficient_hours") from exc
        raise Conflict("The household no longer holds the points this claim gave.",
                       code="insufficient_points") from exc
    reversal = ClaimReversal(claim_id=claim.id, transaction_id=tx.id, reason=reason, user_id=user.id,
                             created_at=utc_naive())
    db.session.add(reversal)
    _event(claim, "reverse", user, reason)
    db.session.flush()
    db.session.expire(claim, ["reversal", "events"])
    record("claim.reverse", user=user, target=f"claim:{claim.id}", community_id=claim.community_id, reason=reason,
           points=claim.points, minutes=claim.minutes, household_id=claim.household_id,
           transaction_id=claim.transaction_id, reversal_transaction_id=tx.id)
    return reversal


def close_publicity(moment: datetime | None = None, run: JobRun | None = None) -> list[int]:
    """Post every claim whose publicity has ended. Returns the ids posted. Safe to run twice.

    Each claim is one item of ``run`` (its own savepoint): a claim that is refused (e.g. its
    community's month is closed) stays ``publicized``, is listed in ``run.skipped``, and the
    others are posted; the next run tries it again."""
    moment = utc_naive(moment) if moment is not None else utc_naive()
    run = run if run is not None else JobRun("close_publicity")
    ids = db.session.execute(
        select(Claim.id).where(Claim.status == "publicized", Claim.publicity_ends_at <= moment).order_by(Claim.id)
    ).scalars().all()
    posted = []
    for claim_id in ids:
        due = False
        with run.item(f"claim:{claim_id}") as item:
            claim = _locked(db.session.get(Claim, claim_id))
            due = claim.status == "publicized" and claim.publicity_ends_at <= moment
            if due:
                post_claim(claim, actor="scheduler")
                _tell(claim, "publicity_ended", points=claim.points, minutes=claim.minutes)
        if item.done and due:
            posted.append(claim_id)
    return posted


def filter_status(query, status: str | None):
    """Claims in a status as people see it: a posted claim that was taken back is "reversed"."""
    if status == "reversed":
        return query.where(~not_reversed())
    if status == "posted":
        return query.where(Claim.status == status, not_reversed())
    if status:
        return query.where(Claim.status == status)
    return query


def claims_query(community_id: int, status: str | None = None, household_id: int | None = None,
                 resident_id: int | None = None):
    query = filter_status(select(Claim).where(Claim.community_id == community_id), status)
    if household_id:
        query = query.where(Claim.household_id == household_id)
    if resident_id:
        query = query.where(Claim.resident_id == resident_id)
    return query
