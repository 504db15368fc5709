"""Teams for tasks (组队): a household (以户为单位) or residents who group for a task, checked in at
once by their leader.

Domain rules, each findable by its word:

* team kinds: a ``household`` team is one household's members (one such team per household and
  task; its leader or staff add kin, 409 ``other_household`` for anyone else); a ``group`` team is
  residents of the community who join it themselves (or whom staff add).
* one team: a resident is in at most one team per task (409 ``already_in_team``; the database's
  ``UNIQUE (task_id, resident_id)`` backs it), and nobody joins or leaves once they have checked in
  for the task (409 ``already_checked_in``): the check-in is the record. The leader leaves last
  (409 ``team_has_members``); a leader alone who leaves ends the team.
* team check-in: the leader scans the task's code (``POST /teams/{id}/checkin``, or the check-in
  page) and every member not yet checked in is checked in once, as if each had scanned; a member
  already checked in (by scanning alone, or earlier through the team) is not counted again. Nothing
  new to record answers the same as before (idempotent).
* slots: each member takes a place. A team that does not fit in the places left is refused whole:
  409 ``task_full`` when none is left, 409 ``team_does_not_fit`` otherwise; nobody is checked in.
  The task row is locked while places are counted, so two teams racing for the last places cannot
  both pass (PostgreSQL; SQLite serialises writers).
* points per: the committee chooses per task. ``member``: each member checked in makes a claim of the
  task's rule for their own household, which the rule's cap counts per household as usual.
  ``team``: the team makes one claim of the rule, in the leader's name, for the leader's household
  (for a household team, the household is the subject of points); members checked in later link
  to the same claim. On such a task a team member does not scan alone (409 ``team_member``), so a
  household cannot earn twice. A refusal of any member's claim (``cap_exceeded``,
  ``resident_inactive``) refuses the whole check-in.
"""

from __future__ import annotations

from flask import has_request_context, request
from sqlalchemy import func, select

from timebank.core.audit_log import record
from timebank.core.clock import utc_naive
from timebank.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from timebank.core.extensions import db
from timebank.core.policy import require_community, require_member
from timebank.core.users import User
from timebank.earning.models import CheckIn, Claim, Task, TaskTeam, TaskTeamMember
from timebank.earning.operations import create_claim, version_at
from timebank.earning.tasks import checked_in, read_token
from timebank.people.models import Community, Resident

#: Staff who form teams for residents and add or take members (residents without phones).
TEAM_STAFF = ("committee", "grid_worker")


def _staff(user: User) -> bool:
    return user.role != "resident"


def visible_team(user: User, team_id: int) -> TaskTeam:
    team = db.session.get(TaskTeam, team_id)
    if team is None:
        raise NotFound("No such team.")
    try:
        require_member(user, team.task.community_id)
    except Forbidden:
        raise NotFound("No such team.") from None
    return team


def teams_of(task: Task) -> list[TaskTeam]:
    return list(db.session.execute(select(TaskTeam).where(TaskTeam.task_id == task.id).order_by(TaskTeam.id))
                .scalars())


def team_of(task: Task, resident_id: int) -> TaskTeam | None:
    """The team of ``task`` that the resident is in, if any."""
    return db.session.execute(select(TaskTeam).join(TaskTeamMember, TaskTeamMember.team_id == TaskTeam.id).where(
        TaskTeamMember.task_id == task.id, TaskTeamMember.resident_id == resident_id)).scalar_one_or_none()


def member_ids(team: TaskTeam) -> list[int]:
    """The team's members, the leader first, then in the order they joined."""
    ids = list(db.session.execute(select(TaskTeamMember.resident_id).where(TaskTeamMember.team_id == team.id)
                                  .order_by(TaskTeamMember.id)).scalars())
    return sorted(ids, key=lambda rid: rid != team.leader_resident_id)


def checkins_of(task: Task, resident_ids: list[int]) -> dict[int, CheckIn]:
    if not resident_ids:
        return {}
    return {c.resident_id: c for c in db.session.execute(
        select(CheckIn).where(CheckIn.task_id == task.id, CheckIn.resident_id.in_(resident_ids))).scalars()}


def _lock(task: Task) -> None:
    """Teams, members and check-ins of a task change one at a time: lock the task row (PostgreSQL;
    SQLite writers are serialised anyway)."""
    db.session.refresh(task, with_for_update=True)


def _not_over(task: Task) -> None:
    if utc_naive() >= task.ends_at:
        raise Conflict("The task is over; its teams no longer change.", code="task_closed")


def _resident(task: Task, resident_id: int | None, field: str = "resident_id") -> Resident:
    resident = db.session.get(Resident, resident_id) if resident_id else None
    if resident is None or resident.household.community_id != task.community_id:
        raise ValidationFailed(errors={field: ["No such resident in this community."]})
    return resident


def _add(team: TaskTeam, resident: Resident, user: User) -> None:
    """one team: put ``resident`` in ``team`` (the task row is locked by the caller)."""
    if not resident.active:
        raise Conflict(f"{resident.name} has left; nothing more is recorded for them.", code="resident_inactive")
    if team.kind == "household" and resident.household_id != team.household_id:
        raise Conflict("A household team is of its household's members only.", code="other_household")
    if team_of(team.task, resident.id) is not None:
        raise Conflict(f"{resident.name} is already in a team of this task.", code="already_in_team")
    if checkins_of(team.task, [resident.id]):
        raise Conflict(f"{resident.name} has already checked in for this task.", code="already_checked_in")
    db.session.add(TaskTeamMember(team_id=team.id, task_id=team.task_id, resident_id=resident.id,
                                  added_by_user_id=user.id, joined_at=utc_naive()))
    db.session.flush()


def create_team(user: User, task: Task, kind: str, name: str | None = None, leader_resident_id: int | None = None,
                member_ids_: list[int] | None = None) -> TaskTeam:
    """Form a team for ``task``. A resident leads the team they form; staff name its leader.

    A household team takes every active member of the leader's household who is free, unless
    ``member_ids_`` names some of them. A group team starts with its leader; others join it
    themselves (staff may name members)."""
    require_member(user, task.community_id)
    if kind not in ("household", "group"):
        raise ValidationFailed(errors={"kind": ["household or group."]})
    if _staff(user):
        require_community(user, task.community_id, *TEAM_STAFF)
        leader = _resident(task, leader_resident_id, "leader_resident_id")
    else:
        if leader_resident_id not in (None, user.resident_id):
            raise Forbidden("A resident forms a team that they lead; staff may form one for a resident.")
        leader = user.resident
        if member_ids_ and kind == "group":
            raise Forbidden("Residents join a group team themselves.")
    _not_over(task)
    _lock(task)
    if kind == "household":
        household = leader.household
        taken = db.session.execute(select(TaskTeam.id).where(
            TaskTeam.task_id == task.id, TaskTeam.household_id == household.id)).first()
        if taken:
            raise Conflict("This household already has a team for this task: join it.", code="team_exists")
        team_name = household.name
    else:
        household = None
        count = db.session.execute(select(func.count()).select_from(TaskTeam).where(TaskTeam.task_id == task.id))
        team_name = (name or "").strip()[:100] or f"第{count.scalar_one() + 1}队"
    team = TaskTeam(task_id=task.id, kind=kind, name=team_name, leader_resident_id=leader.id,
                    household_id=household.id if household else None, created_by_user_id=user.id,
                    created_at=utc_naive())
    db.session.add(team)
    db.session.flush()
    _add(team, leader, user)
    if kind == "household":
        if member_ids_:
            others = [_resident(task, rid, "member_ids") for rid in dict.fromkeys(member_ids_) if rid != leader.id]
            for member in others:
                _add(team, member, user)
        else:  # everyone of the household who is free
            for member in household.members:
                if (member.id != leader.id and member.active and team_of(task, member.id) is None
                        and not checkins_of(task, [member.id])):
                    _add(team, member, user)
    else:
        for rid in dict.fromkeys(member_ids_ or []):
            if rid != leader.id:
                _add(team, _resident(task, rid, "member_ids"), user)
    record("task.team_create", user=user, target=f"task_team:{team.id}", community_id=task.community_id,
           task_id=task.id, kind=kind, leader_resident_id=leader.id, members=member_ids(team))
    return team


def _may_change(user: User, team: TaskTeam, resident: Resident) -> None:
    """Who puts a resident in a team or takes them out: the resident; the leader of a household
    team for their kin; the team's leader taking a member out; staff of the community."""
    if _staff(user):
        require_community(user, team.task.community_id, *TEAM_STAFF)
        return
    if user.resident_id in (resident.id, team.leader_resident_id):
        return
    raise Forbidden("A resident joins or leaves a team themselves; the leader or staff may do it for them.")


def join_team(user: User, team: TaskTeam, resident_id: int | None = None) -> TaskTeam:
    resident = _resident(team.task, resident_id or user.resident_id)
    _may_change(user, team, resident)
    if not _staff(user) and resident.id != user.resident_id and team.kind != "household":
        raise Forbidden("Residents join a group team themselves.")
    _not_over(team.task)
    _lock(team.task)
    _add(team, resident, user)
    record("task.team_join", user=user, target=f"task_team:{team.id}", community_id=team.task.community_id,
           resident_id=resident.id)
    return team


def leave_team(user: User, team: TaskTeam, resident_id: int | None = None) -> TaskTeam | None:
    """Take a member out. The leader leaves last, which ends the team (None is returned)."""
    resident = _resident(team.task, resident_id or user.resident_id)
    _may_change(user, team, resident)
    _lock(team.task)
    row = db.session.execute(select(TaskTeamMember).where(
        TaskTeamMember.team_id == team.id, TaskTeamMember.resident_id == resident.id)).scalar_one_or_none()
    if row is None:
        raise Conflict(f"{resident.name} is not in this team.", code="not_in_team")
    if checkins_of(team.task, [resident.id]):
        raise Conflict(f"{resident.name} has checked in for this task; the check-in stays.", code="already_checked_in")
    ids = member_ids(team)
    if resident.id == team.leader_resident_id and len(ids) > 1:
        raise Conflict("The leader leaves last: the other members leave first.", code="team_has_members")
    community_id, team_id = team.task.community_id, team.id
    db.session.delete(row)
    ended = resident.id == team.leader_resident_id
    if ended:
        db.session.flush()
        db.session.delete(team)
    db.session.flush()
    record("task.team_leave", user=user, target=f"task_team:{team_id}", community_id=community_id,
           resident_id=resident.id, ended=ended)
    if ended:
        return None
    db.session.expire(team, ["members"])
    return team


def check_in_team(user: User, team: TaskTeam, token: str) -> tuple[list[Claim], list[int]]:
    """team check-in: the leader checks every member in once. Returns the new claims and the
    residents checked in now (both empty when every member had already checked in)."""
    task = read_token(token)
    if task.id != team.task_id:
        raise ValidationFailed("This check-in code is of another task.", code="token_invalid")
    if user.role != "resident" or user.resident_id != team.leader_resident_id:
        raise Forbidden("Only the team's leader checks the team in, with their own login.", code="not_team_leader")
    _lock(task)
    ids = member_ids(team)
    done = checkins_of(task, ids)
    newcomers = [rid for rid in ids if rid not in done]
    if not newcomers:
        return [], []
    moment = utc_naive()
    if not task.starts_at <= moment < task.ends_at:
        raise Conflict("The task is not open for check-in now.", code="task_closed")
    used = checked_in(task)
    if used + len(newcomers) > task.slots:
        if used >= task.slots:
            raise Conflict("All places of this task are taken.", code="task_full")
        raise Conflict(f"The team needs {len(newcomers)} places and {task.slots - used} are left; "
                       "nobody was checked in.", code="team_does_not_fit")
    if version_at(task.rule) is None:
        raise Conflict("The task's item of the points list is not in force.", code="rule_inactive")
    community = db.session.get(Community, task.community_id)
    residents = {rid: db.session.get(Resident, rid) for rid in newcomers}
    gone = [r.name for r in residents.values() if not r.active]
    if gone:
        raise Conflict(f"{', '.join(gone)} left the community; take them out of the team first.",
                       code="resident_inactive")
    note = f"{task.title} · {team.name}"
    claims: list[Claim] = []
    for rid in newcomers:
        if task.points_per == "team":
            if team.claim_id is None:
                claim = create_claim(user, community, task.rule.code, team.leader_resident_id, note=note, task=task,
                                     team_leader=True)
                team.claim_id = claim.id
                claims.append(claim)
            claim_id = team.claim_id
        else:
            claim = create_claim(user, community, task.rule.code, rid, note=note, task=task, team_leader=True)
            claims.append(claim)
            claim_id = claim.id
        db.session.add(CheckIn(task_id=task.id, resident_id=rid, claim_id=claim_id, created_at=moment,
                               team_id=team.id, **_source()))
    if team.checked_in_at is None:
        team.checked_in_at = moment
    db.session.flush()
    return claims, newcomers


def _source() -> dict:
    if not has_request_context():
        return {}
    return {"address": request.remote_addr, "device": request.user_agent.string[:300] or None}


def team_view(user: User, team: TaskTeam) -> dict:
    """A team as the API and the pages show it. Members' names are shown to staff and to the team's own
    members; other residents see the team's name, kind and size."""
    ids = member_ids(team)
    done = checkins_of(team.task, ids)
    residents = {r.id: r for r in db.session.execute(select(Resident).where(Resident.id.in_(ids))).scalars()}
    open_to_me = _staff(user) or user.resident_id in ids
    view = {"id": team.id, "task_id": team.task_id, "kind": team.kind, "name": team.name,
            "household_id": team.household_id, "size": len(ids),
            "checked_in": sum(1 for rid in ids if rid in done), "checked_in_at": team.checked_in_at,
            "claim_id": team.claim_id, "leader_resident_id": team.leader_resident_id if open_to_me else None,
            "members": None}
    if open_to_me:
        view["members"] = [{"resident_id": rid, "name": residents[rid].name,
                            "household_id": residents[rid].household_id, "leader": rid == team.leader_resident_id,
                            "checked_in": rid in done,
                            "claim_id": done[rid].claim_id if rid in done else None,
                            "by_team": rid in done and done[rid].team_id == team.id}
                           for rid in ids]
    return view
