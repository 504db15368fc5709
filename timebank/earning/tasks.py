"""Tasks (定期发放任务) and QR check-in (扫码签到).

The check-in code is a token signed with the app's SECRET_KEY (itsdangerous) naming the task and a
time period of ``TIMEBANK_CHECKIN_PERIOD_SECONDS`` (60 by default). The code on the screen rotates every
period, and a code stays valid for one more period, so a resident who scanned just before it changed
is not turned away. A photo of the code sent to someone at home is useless two minutes later.

Check-in rules: one check-in per resident and task (a repeat returns the same claim); at most
``slots`` residents (409 ``task_full``); only between ``starts_at`` and ``ends_at`` (409 ``task_closed``);
an old code gives 410 ``token_expired``, a forged or damaged one 422 ``token_invalid``. The check-in
makes a claim of the task's rule, which then follows the rule's review and publicity.

Teams (a household, or residents who group for a task) are checked in by their leader at once:
:mod:`timebank.earning.teams`. On a task whose points go per team (``points_per: team``) a team
member does not check in alone (409 ``team_member``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from flask import current_app, has_request_context, request
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from timebank.core.audit_log import record
from timebank.core.clock import now, utc_naive
from timebank.core.errors import Conflict, Forbidden, Gone, NotFound, ValidationFailed
from timebank.core.extensions import db
from timebank.core.policy import require_community, require_member
from timebank.core.users import User
from timebank.earning.models import POINTS_PER, CheckIn, Claim, Task, TaskTeamMember
from timebank.earning.operations import create_claim, rule_by_code
from timebank.people.models import Community, Resident

TASK_WRITERS = ("committee", "grid_worker")
_SALT = "timebank.checkin"


def period_seconds() -> int:
    return int(current_app.config.get("TIMEBANK_CHECKIN_PERIOD_SECONDS", 60))


def create_task(user: User, community: Community, rule_code: str, title: str, starts_at: datetime,
                ends_at: datetime, slots: int, points_per: str = "member") -> Task:
    """A task; ``points_per`` says whether a team's members each earn the rule (``member``) or the team
    earns it once (``team``)."""
    require_community(user, community.id, *TASK_WRITERS)
    rule = rule_by_code(community.id, rule_code)
    starts, ends = utc_naive(starts_at), utc_naive(ends_at)
    if ends <= starts:
        raise ValidationFailed(errors={"ends_at": ["The task ends after it starts."]})
    if points_per not in POINTS_PER:
        raise ValidationFailed(errors={"points_per": ["member or team."]})
    task = Task(community_id=community.id, rule_id=rule.id, title=title, starts_at=starts, ends_at=ends,
                slots=slots, points_per=points_per, created_by_user_id=user.id, created_at=utc_naive())
    db.session.add(task)
    db.session.flush()
    record("task.create", user=user, target=f"task:{task.id}", community_id=community.id, rule=rule.code,
           slots=slots, points_per=points_per)
    return task


def visible_task(user: User, task_id: int) -> Task:
    task = db.session.get(Task, task_id)
    if task is None:
        raise NotFound("No such task.")
    try:
        require_member(user, task.community_id)
    except Forbidden:
        raise NotFound("No such task.") from None
    return task


def _places_taken(task_id: int):
    return select(func.count()).select_from(CheckIn).where(CheckIn.task_id == task_id)


def checked_in(task: Task) -> int:
    return db.session.execute(_places_taken(task.id)).scalar_one()


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def checkin_url(token: str) -> str:
    base = current_app.config.get("TIMEBANK_BASE_URL")
    if not base:
        base = request.host_url if has_request_context() else "http://127.0.0.1:5000/"
    return base.rstrip("/") + "/checkin?token=" + quote(token)


def checkin_code(user: User, task: Task) -> dict:
    """The code to show now: ``{token, url, expires_at}`` (staff of the task's community)."""
    require_community(user, task.community_id, *TASK_WRITERS, "supervisor")
    seconds = period_seconds()
    period = int(now().timestamp()) // seconds
    token = _serializer().dumps({"task": task.id, "period": period})
    expires_at = datetime.fromtimestamp((period + 2) * seconds, tz=UTC)
    return {"token": token, "url": checkin_url(token), "expires_at": utc_naive(expires_at), "task_id": task.id}


def read_token(token: str, lock: bool = False) -> Task:
    """The task of a check-in code; ``lock``: its row locked, so that its places cannot be
    overbooked by simultaneous scans (PostgreSQL), in the same statement."""
    try:
        data = _serializer().loads(token)
        task_id, period = int(data["task"]), int(data["period"])
    except (BadSignature, KeyError, TypeError, ValueError):
        raise ValidationFailed("This is not a check-in code of this deployment.", code="token_invalid") from None
    current = int(now().timestamp()) // period_seconds()
    if period > current or period < current - 1:
        raise Gone("This check-in code has expired; scan the code on the screen again.", code="token_expired")
    # The task with its rule and community, which a check-in goes on to read, in the one statement.
    query = (select(Task, Community).join(Community, Community.id == Task.community_id)
             .options(joinedload(Task.rule, innerjoin=True)).where(Task.id == task_id))
    if lock:
        query = query.with_for_update(of=Task).execution_options(populate_existing=True)
    found = db.session.execute(query).first()
    if found is None:
        raise ValidationFailed("This check-in code names no task.", code="token_invalid")
    task, community = found
    if task.rule.community_id == community.id:  # the rule holds it: the session keeps what is referred to
        set_committed_value(task.rule, "community", community)
    return task


def check_in(user: User, token: str) -> tuple[Claim, bool]:
    """Check the logged-in resident in. Returns the claim and whether it is new."""
    task = read_token(token, lock=True)
    # The resident with their household, in one query (the membership check reads both).
    resident = None if user.resident_id is None else db.session.get(
        Resident, user.resident_id, options=[joinedload(Resident.household)])
    if user.role != "resident" or resident is None:
        raise Forbidden("Residents check in with their own login.")
    if not resident.belongs_to(task.community_id):  # its residents, and its guests today
        raise Forbidden("This task belongs to another community.")
    # The resident's earlier check-in and the places taken, in one statement.
    existing_id, taken = db.session.execute(select(
        select(CheckIn.id).where(CheckIn.task_id == task.id, CheckIn.resident_id == resident.id).scalar_subquery(),
        _places_taken(task.id).scalar_subquery())).one()
    if existing_id is not None:
        existing = db.session.get(CheckIn, existing_id)
        assert existing is not None  # read just now, and check-ins are never deleted
        return existing.claim, False
    if task.points_per == "team" and db.session.execute(select(TaskTeamMember.id).where(
            TaskTeamMember.task_id == task.id, TaskTeamMember.resident_id == resident.id)).first():
        raise Conflict("Your team's leader checks the whole team in: the team earns this task's points once.",
                       code="team_member")
    moment = utc_naive()
    if not task.starts_at <= moment < task.ends_at:
        raise Conflict("The task is not open for check-in now.", code="task_closed")
    if taken >= task.slots:
        raise Conflict("All places of this task are taken.", code="task_full")
    community = db.session.get(Community, task.community_id)
    # create_claim refuses a rule not in force (409 rule_inactive), with the task's rule as loaded.
    claim = create_claim(user, community, task.rule.code, resident.id, note=task.title, task=task)
    db.session.add(CheckIn(task_id=task.id, resident_id=resident.id, claim_id=claim.id, created_at=moment,
                           **({"address": request.remote_addr, "device": request.user_agent.string[:300] or None}
                              if has_request_context() else {})))
    db.session.flush()
    return claim, True


def checkin_rate_limit() -> str:
    """Flask-Limiter's limit for check-in attempts per user (``TIMEBANK_CHECKIN_RATE_LIMIT``)."""
    return current_app.config.get("TIMEBANK_CHECKIN_RATE_LIMIT", "10 per minute")
