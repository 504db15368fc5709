"""Earning: the points list (积分细则) with versions, claims (申报) with review and publicity (公示),
and tasks with QR check-in (定期发放任务).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from timebank.core.clock import utc_naive
from timebank.core.extensions import db
from timebank.people.models import Community, Household, Resident

RULE_CATEGORIES = ("volunteer", "red", "moral", "neighbour_help")
REVIEW_MODES = ("auto", "review")
CAP_PERIODS = ("day", "week", "month", "year")
CLAIM_STATUSES = ("pending", "publicized", "posted", "rejected")
#: A task's points for a team: each member checked in earns the rule (``member``), or the team earns it
#: once (``team``), credited to the leader's household (for a household team: the household).
POINTS_PER = ("member", "team")
#: A team of a task: a household (以户为单位) or residents who group for it.
TEAM_KINDS = ("household", "group")
#: What the API shows: a posted claim that was taken back (:class:`ClaimReversal`) shows ``reversed``.
SHOWN_CLAIM_STATUSES = (*CLAIM_STATUSES, "reversed")


class Grid(db.Model):
    """A grid (网格) of a community. Optional: ``households.grid`` holds the grid's code as text."""

    __tablename__ = "grids"
    __table_args__ = (UniqueConstraint("community_id", "code", name="uq_grids_community_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    #: What ``households.grid`` says for households of this grid, e.g. ``1``.
    code: Mapped[str] = mapped_column(String(64))
    #: Shown name, e.g. ``东区一网格``.
    name: Mapped[str] = mapped_column(String(200))
    #: The grid worker (网格员) responsible, if known.
    worker_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Rule(db.Model):
    """An item of a community's points list. Its terms live in :class:`RuleVersion` rows."""

    __tablename__ = "rules"
    __table_args__ = (UniqueConstraint("community_id", "code", name="uq_rules_community_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    #: Short stable code within the community, used by claims: ``clean_lane``.
    code: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)

    community: Mapped[Community] = relationship()
    versions: Mapped[list[RuleVersion]] = relationship(back_populates="rule", order_by="RuleVersion.number")


class RuleVersion(db.Model):
    """The terms of a rule from ``effective_from`` on. A change adds a version; old ones stay as they were,
    so claims made under them keep what they were worth."""

    __tablename__ = "rule_versions"
    __table_args__ = (
        UniqueConstraint("rule_id", "number", name="uq_rule_versions_rule_number"),
        CheckConstraint("category IN ('volunteer', 'red', 'moral', 'neighbour_help')", name="category"),
        CheckConstraint("review IN ('auto', 'review')", name="review"),
        CheckConstraint("points >= 0 AND minutes >= 0 AND points + minutes > 0", name="worth"),
        CheckConstraint("publicity_days >= 0", name="publicity_days"),
        CheckConstraint("cap_period IS NULL OR cap_period IN ('day', 'week', 'month', 'year')", name="cap_period"),
        CheckConstraint("(cap_period IS NULL) = (cap_max_points IS NULL)", name="cap_complete"),
        CheckConstraint("cap_max_points IS NULL OR cap_max_points > 0", name="cap_positive"),
        # The cap in minutes (migration 0013): its own period column, equal to cap_period when both are set.
        CheckConstraint("cap_minutes_period IS NULL OR cap_minutes_period IN ('day', 'week', 'month', 'year')",
                        name="cap_minutes_period"),
        CheckConstraint("(cap_minutes_period IS NULL) = (cap_max_minutes IS NULL)", name="cap_minutes_complete"),
        CheckConstraint("cap_max_minutes IS NULL OR cap_max_minutes > 0", name="cap_minutes_positive"),
        CheckConstraint("cap_period IS NULL OR cap_minutes_period IS NULL OR cap_period = cap_minutes_period",
                        name="cap_same_period"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id"), index=True)
    #: 1, 2, 3... in order of creation.
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    #: volunteer (志愿服务), red (红色积分), moral (道德积分), neighbour_help (邻里互助).
    category: Mapped[str] = mapped_column(String(16))
    #: Points credited to the household per claim.
    points: Mapped[int] = mapped_column(Integer)
    #: Time-bank minutes credited to the resident per claim (0: none).
    minutes: Mapped[int] = mapped_column(Integer, default=0)
    #: ``auto``: approved when claimed; ``review``: a reviewer approves or rejects.
    review: Mapped[str] = mapped_column(String(8))
    #: Days an approved claim stays on the notice board (公示) before it is posted; 0 posts at once.
    publicity_days: Mapped[int] = mapped_column(Integer, default=0)
    #: Cap per household: period (day/week/month/year, local calendar) and the most points in it.
    cap_period: Mapped[str | None] = mapped_column(String(8))
    cap_max_points: Mapped[int | None] = mapped_column(Integer)
    #: Cap per household in time-bank minutes (``cap.max_minutes``), over the same period.
    cap_minutes_period: Mapped[str | None] = mapped_column(String(8))
    cap_max_minutes: Mapped[int | None] = mapped_column(Integer)

    @property
    def cap(self) -> dict | None:
        """The cap as the API shows it: ``{period, max_points, max_minutes}`` (either limit may be None)."""
        period = self.cap_period or self.cap_minutes_period
        if not period:
            return None
        return {"period": period, "max_points": self.cap_max_points, "max_minutes": self.cap_max_minutes}
    #: False retires the rule: no new claims from ``effective_from`` on.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: From when these terms apply (claims made at or after it use them).
    effective_from: Mapped[datetime] = mapped_column(DateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    rule: Mapped[Rule] = relationship(back_populates="versions")


class Task(db.Model):
    """A task (定期发放任务) with slots and a time window; attendance is checked with a rotating QR code."""

    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint("slots > 0", name="slots_positive"),
        CheckConstraint("ends_at > starts_at", name="window"),
        CheckConstraint("points_per IN ('member', 'team')", name="points_per"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    #: The rule whose (current) terms each check-in claims.
    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(DateTime)
    ends_at: Mapped[datetime] = mapped_column(DateTime)
    #: How many residents may check in (each member of a team takes one).
    slots: Mapped[int] = mapped_column(Integer)
    #: ``member``: each resident checked in earns the rule; ``team``: a team earns it once (migration 0020).
    points_per: Mapped[str] = mapped_column(String(8), default="member", server_default="member")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    rule: Mapped[Rule] = relationship()


class Claim(db.Model):
    """A claim (申报) of a rule by a resident, for their household.

    pending -> publicized (until ``publicity_ends_at``) -> posted; or rejected. ``points`` and
    ``minutes`` are copied from the rule version in force when the claim was made.
    """

    __tablename__ = "claims"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'publicized', 'posted', 'rejected')", name="status"),
        CheckConstraint("points >= 0 AND minutes >= 0", name="worth"),
        CheckConstraint("(status = 'posted') = (transaction_id IS NOT NULL)", name="posted_has_transaction"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id"), index=True)
    rule_version_id: Mapped[int] = mapped_column(ForeignKey("rule_versions.id"))
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    points: Mapped[int] = mapped_column(Integer)
    minutes: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12), index=True)
    note: Mapped[str] = mapped_column(Text, default="")
    #: The login that entered the claim: the resident, or staff entering it for them (代录).
    entered_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: True when staff entered it on the resident's behalf.
    entered_for_resident: Mapped[bool] = mapped_column(Boolean, default=False)
    #: A guest's claim (候鸟, 流动党员: the resident's household is of another community): its points go
    #: to the person's guest wallet in the claim's community (docs/subdistrict.md).
    guest: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Set for claims made by a QR check-in.
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive, index=True)
    reviewed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: When the notice ends; the ``close_publicity`` job posts the claim after it.
    publicity_ends_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    #: The ledger transaction that credited the points (and minutes).
    transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    posted_at: Mapped[datetime | None] = mapped_column(DateTime)

    rule: Mapped[Rule] = relationship()
    rule_version: Mapped[RuleVersion] = relationship()
    resident: Mapped[Resident] = relationship()
    household: Mapped[Household] = relationship()
    events: Mapped[list[ClaimEvent]] = relationship(order_by="ClaimEvent.id", viewonly=True)
    reversal: Mapped[ClaimReversal | None] = relationship(viewonly=True, uselist=False)

    @property
    def shown_status(self) -> str:
        """``status``, or ``reversed`` for a posted claim that was taken back."""
        return "reversed" if self.reversal is not None else self.status


class ClaimReversal(db.Model):
    """A posted claim taken back (撤销) by the committee: the compensating ledger transaction, why, who
    and when. At most one per claim; append-only (the database refuses UPDATE and DELETE). The claim's
    own row stays ``posted``: it records that the points were posted, this row that they were taken back.
    """

    __tablename__ = "claim_reversals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), unique=True)
    #: The ``claim_reversal`` transaction: the claim's postings negated (``reverses_id`` names the claim's).
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"), unique=True)
    reason: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive, index=True)

    claim: Mapped[Claim] = relationship(viewonly=True)


class ClaimEvent(db.Model):
    """The history of a claim: created, approved, objected, rejected, posted. Append-only."""

    __tablename__ = "claim_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    #: ``create``, ``approve``, ``reject``, ``object``, ``post``, ``reverse``.
    action: Mapped[str] = mapped_column(String(16))
    #: Null for the scheduler.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)


class CheckIn(db.Model):
    """A resident's attendance at a task, by QR code; one per resident and task."""

    __tablename__ = "checkins"
    __table_args__ = (UniqueConstraint("task_id", "resident_id", name="uq_checkins_task_resident"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)
    #: Client address of the check-in request (for the anomaly report: many residents, one source).
    address: Mapped[str | None] = mapped_column(String(64), index=True)
    #: Device fingerprint of the check-in request: its User-Agent, cut to 300 characters.
    device: Mapped[str | None] = mapped_column(String(300))
    #: The team whose leader checked this resident in (null: the resident scanned for themselves).
    team_id: Mapped[int | None] = mapped_column(ForeignKey("task_teams.id"))

    claim: Mapped[Claim] = relationship()


class TaskTeam(db.Model):
    """A team of a task: a household (``household``: its members only, one team per household and
    task) or residents who group for it (``group``). The leader checks every member in at once."""

    __tablename__ = "task_teams"
    __table_args__ = (
        UniqueConstraint("task_id", "household_id", name="uq_task_teams_task_household"),
        CheckConstraint("kind IN ('household', 'group')", name="kind"),
        CheckConstraint("(kind = 'household') = (household_id IS NOT NULL)", name="household_kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))
    #: Shown name: the household's name, or what the group calls itself.
    name: Mapped[str] = mapped_column(String(100))
    leader_resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"))
    #: The household of a household team (null for a group).
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"))
    #: For a task whose points go per team: the team's one claim, made at its first check-in.
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id"))
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)
    #: When the leader first checked the team in.
    checked_in_at: Mapped[datetime | None] = mapped_column(DateTime)

    task: Mapped[Task] = relationship()
    leader: Mapped[Resident] = relationship()
    members: Mapped[list[TaskTeamMember]] = relationship(order_by="TaskTeamMember.id", viewonly=True)
    claim: Mapped[Claim | None] = relationship()


class TaskTeamMember(db.Model):
    """A resident in a team; a resident is in at most one team per task. The leader is a member too."""

    __tablename__ = "task_team_members"
    __table_args__ = (UniqueConstraint("task_id", "resident_id", name="uq_task_team_members_task_resident"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("task_teams.id"), index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"))
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    #: Who put them in: themselves, their household team's leader, or staff.
    added_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    joined_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)

    resident: Mapped[Resident] = relationship()




# --- honours (荣誉: 文明家庭, 最美家庭, 美丽庭院) ---------------------------------------------------------

HONOUR_AWARD_STATUSES = ("pending", "publicized", "held", "under_review", "withdrawn", "rejected", "ended")


class Honour(db.Model):
    """An honour of a community's honour list (评优评先): 文明家庭, 最美家庭, 美丽庭院 ...

    Awards copy ``points``, ``term_months`` and ``review_months`` when they are approved, so a change
    here never rewrites what an award already was."""

    __tablename__ = "honours"
    __table_args__ = (
        UniqueConstraint("community_id", "code", name="uq_honours_community_code"),
        CheckConstraint("points >= 0", name="points"),
        CheckConstraint("publicity_days >= 0", name="publicity_days"),
        CheckConstraint("term_months > 0", name="term_months"),
        CheckConstraint("review_months > 0", name="review_months"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    #: Short stable code within the community: ``civilized_family``.
    code: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    #: Points credited to the household once, when the honour is awarded (0: none).
    points: Mapped[int] = mapped_column(Integer, default=0)
    #: Days a nomination approved by the committee stays on the notice board (公示) before it is awarded.
    publicity_days: Mapped[int] = mapped_column(Integer, default=7)
    #: How long an award is held, in months from the day it is awarded.
    term_months: Mapped[int] = mapped_column(Integer, default=12)
    #: How often a held award is put up for review (半年一审核: 6).
    review_months: Mapped[int] = mapped_column(Integer, default=6)
    #: False: no new nominations (awards already made keep their course).
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    community: Mapped[Community] = relationship()


class HonourAward(db.Model):
    """A household nominated for, awarded and holding an honour.

    pending -> (committee approves) -> publicized until ``publicity_ends_at`` -> held from
    ``held_from`` until ``held_until``; or rejected. An objection during publicity sends it back to
    pending. The ``review_honours`` job puts a held award up for review (``under_review``) when
    ``next_review_at`` comes; the committee keeps it (held again, next review ``review_months`` later)
    or withdraws it, each with a reason. An award past ``held_until`` is ``ended``.
    """

    __tablename__ = "honour_awards"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'publicized', 'held', 'under_review', 'withdrawn', 'rejected', "
                        "'ended')", name="status"),
        CheckConstraint("points >= 0", name="points"),
        CheckConstraint("review_months > 0", name="review_months"),
        CheckConstraint("transaction_id IS NULL OR points > 0", name="transaction_has_points"),
        CheckConstraint("status NOT IN ('held', 'under_review', 'withdrawn', 'ended') OR "
                        "(held_from IS NOT NULL AND held_until IS NOT NULL)", name="held_has_term"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    honour_id: Mapped[int] = mapped_column(ForeignKey("honours.id"), index=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    #: Points credited when awarded (copied from the honour at nomination).
    points: Mapped[int] = mapped_column(Integer, default=0)
    #: Months it is held and months between reviews (copied from the honour at nomination).
    term_months: Mapped[int] = mapped_column(Integer)
    review_months: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text, default="")
    #: Who nominated the household (committee or grid worker).
    proposed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive, index=True)
    #: The committee member who approved the nomination.
    approved_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: When the notice ends; the ``close_honour_publicity`` job awards the honour after it.
    publicity_ends_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    held_from: Mapped[datetime | None] = mapped_column(DateTime)
    held_until: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    #: When the ``review_honours`` job puts the award up for review next.
    next_review_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    #: Why it was withdrawn (撤销荣誉), by whom and when.
    withdrawal_reason: Mapped[str | None] = mapped_column(Text)
    withdrawn_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: The ledger transaction that credited the points (once: idempotency key ``honour_award:<id>:post``).
    transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"), unique=True)

    honour: Mapped[Honour] = relationship()
    household: Mapped[Household] = relationship()
    events: Mapped[list[HonourEvent]] = relationship(order_by="HonourEvent.id", viewonly=True)


class HonourEvent(db.Model):
    """The history of an award: propose, approve, reject, object, award, review, keep, withdraw, end.
    Append-only (the database refuses UPDATE and DELETE)."""

    __tablename__ = "honour_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    award_id: Mapped[int] = mapped_column(ForeignKey("honour_awards.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    #: Null for the scheduler.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)


# --- deductions (扣分项) and the ranking score (积分榜) --------------------------------------------------

DEDUCTION_STATUSES = ("pending", "publicized", "applied", "rejected")


class DeductionItem(db.Model):
    """An item of the points list with negative points (扣分项): breaking a village rule (村规民约).
    Deductions copy ``points`` when they are entered, so a change never rewrites past ones."""

    __tablename__ = "deduction_items"
    __table_args__ = (
        UniqueConstraint("community_id", "code", name="uq_deduction_items_community_code"),
        CheckConstraint("points < 0", name="negative"),
        CheckConstraint("publicity_days >= 0", name="publicity_days"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    #: Negative: -5 takes five points.
    points: Mapped[int] = mapped_column(Integer)
    #: Days an approved deduction stays on the notice board (公示) before it is applied.
    publicity_days: Mapped[int] = mapped_column(Integer, default=3)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    community: Mapped[Community] = relationship()


class Deduction(db.Model):
    """A deduction of a household (扣分): pending -> (committee approves) -> publicized until
    ``publicity_ends_at`` -> applied; or rejected. An objection during publicity sends it back.

    Applied, it takes what the wallet holds, at most ``-points`` (``wallet_points``, one ledger
    transaction); the rest (``ranking_points``) counts against the household's ranking score only.
    It is never a debt: the wallet never goes below zero and later earnings are not taken.
    """

    __tablename__ = "deductions"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'publicized', 'applied', 'rejected')", name="status"),
        CheckConstraint("points < 0", name="negative"),
        CheckConstraint("wallet_points >= 0 AND ranking_points >= 0", name="parts"),
        CheckConstraint("(status = 'applied') = (applied_at IS NOT NULL)", name="applied_at"),
        CheckConstraint("status <> 'applied' OR wallet_points + ranking_points + points = 0", name="parts_sum"),
        CheckConstraint("(transaction_id IS NULL) = (wallet_points = 0)", name="transaction_when_taken"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("deduction_items.id"), index=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    #: The resident whose conduct it is about, if one is named.
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"))
    #: Negative, copied from the item when entered.
    points: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), index=True)
    note: Mapped[str] = mapped_column(Text, default="")
    entered_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive, index=True)
    reviewed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime)
    publicity_ends_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    applied_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    #: What the wallet lost (at most its balance then).
    wallet_points: Mapped[int] = mapped_column(Integer, default=0)
    #: The rest, counted against the ranking score only (not a debt).
    ranking_points: Mapped[int] = mapped_column(Integer, default=0)
    #: The ledger transaction that took ``wallet_points`` (none when the wallet was empty).
    transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"), unique=True)

    item: Mapped[DeductionItem] = relationship()
    household: Mapped[Household] = relationship()
    resident: Mapped[Resident | None] = relationship()
    events: Mapped[list[DeductionEvent]] = relationship(order_by="DeductionEvent.id", viewonly=True)


class DeductionEvent(db.Model):
    """The history of a deduction: create, approve, reject, object, apply. Append-only."""

    __tablename__ = "deduction_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deduction_id: Mapped[int] = mapped_column(ForeignKey("deductions.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)


class RankingSettings(db.Model):
    """The committee's choices for the rankings (红黑榜) of its community: whether the public board
    shows the black list. No row: the default (not shown)."""

    __tablename__ = "ranking_settings"

    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), primary_key=True)
    publish_black_list: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    changed_at: Mapped[datetime] = mapped_column(DateTime, default=utc_naive)
