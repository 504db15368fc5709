"""``timebank demo``: a believable demo community (幸福里社区) with three months of history.

Idempotent: when the demo community exists nothing is done. History is made with a
:class:`~timebank.core.clock.FrozenClock` set into ``app.extensions["timebank.core.clock"]`` and moved through the
last 90 days, so claims, approvals, publicity, check-ins and help carry their real dates; the clock
is restored afterwards. Other features add to the demo with :func:`register_extension` (the love
supermarket adds goods and redemptions): each function is called with the demo :class:`Community` at
the end, with the clock at the present; :func:`current` gives the whole :class:`DemoContext` meanwhile.
Extensions flush and never commit: the command commits once.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from timebank.core import boundary
from timebank.core.auth import hash_password
from timebank.core.clock import FrozenClock, local_zone, now
from timebank.core.errors import DomainError
from timebank.core.extensions import db
from timebank.core.users import User, person_key_for
from timebank.earning import operations as earning
from timebank.earning import tasks, teams
from timebank.earning.models import Grid, Task, TaskTeam
from timebank.hours import operations as hours
from timebank.people import operations as people
from timebank.people.models import Community, Household, Resident
from timebank.shop.demo import load_services_demo, load_shop_demo

DEMO_CODE = "xingfu"
DEMO_NAME = "幸福里社区"
#: Password of every demo login (staff and residents). Documented in docs/earning.md.
DEMO_PASSWORD = "demo-pass-2026"
#: Staff logins: username -> role.
DEMO_STAFF = {
    "demo_admin": "admin",
    "demo_committee": "committee",
    "demo_grid": "grid_worker",
    "demo_clerk": "clerk",
    "demo_supervisor": "supervisor",
    "demo_barber": "clerk",
}
HISTORY_DAYS = 90
#: Days before the history when the first honours were awarded (a little over half a year before today).
HONOURS_LEAD_DAYS = 110

#: Functions ``fn(context)`` run at the end of the demo (the supermarket adds goods and redemptions).
EXTENSIONS: list[Callable[[DemoContext], object]] = [
    lambda context: load_shop_demo(context.community, context.staff.get("demo_clerk")),
    lambda context: _notices_demo(context),
    # A partner shop (幸福理发店, whose till is demo_barber's) with a haircut, a lunch at the canteen.
    lambda context: load_services_demo(context.community, context.staff.get("demo_clerk"),
                                       context.staff.get("demo_barber")),
]
_current: list[DemoContext] = []


def register_extension(fn: Callable[[DemoContext], object]) -> Callable:
    """Add ``fn(context)`` to the end of ``timebank demo``. Usable as a decorator; registering twice is once."""
    if fn not in EXTENSIONS:
        EXTENSIONS.append(fn)
    return fn


def current() -> DemoContext | None:
    """The demo being built (for extensions that want its people, logins or seeded random)."""
    return _current[-1] if _current else None


@dataclass
class DemoContext:
    """What an extension gets: the community, its people and logins, the clock and a seeded random."""

    community: Community
    households: list[Household]
    residents: list[Resident]
    staff: dict[str, User]
    clock: FrozenClock
    random: random.Random
    start: datetime
    end: datetime
    notes: list[str] = field(default_factory=list)


GRIDS = [("1", "东区网格"), ("2", "西区网格"), ("3", "南区网格")]
SURNAMES = "张王李赵刘陈杨黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程魏苏吕丁任沈姚卢"
GIVEN = ["秀英", "桂英", "玉兰", "建国", "建华", "志强", "国庆", "海燕", "丽华", "春梅", "明", "伟", "芳", "军", "敏",
         "静", "磊", "洋", "勇", "艳", "杰", "娟", "涛", "超", "霞", "平", "刚", "桂兰", "子涵", "浩然", "欣怡",
         "宇轩", "梓萱", "雨桐", "德福", "淑珍", "凤英", "文华", "红梅", "永福"]
STREETS = ["幸福路", "和平巷", "槐树街", "石榴巷", "东风路"]

#: The points list (积分细则): code, title, category, points, minutes, review, publicity days, cap.
RULES = [
    ("clean_lane", "清扫街巷 · 门前三包", "volunteer", 10, 60, "review", 3, ("week", 30)),
    ("volunteer_hour", "志愿服务（每小时）", "volunteer", 5, 60, "review", 3, ("day", 20)),
    ("garbage_sorting", "垃圾分类督导", "volunteer", 5, 30, "auto", 0, ("day", 5)),
    ("party_study", "党员学习日", "red", 5, 0, "auto", 0, ("week", 5)),
    ("vanguard_post", "党员先锋岗值守", "red", 10, 60, "review", 3, ("month", 40)),
    ("filial", "孝老爱亲", "moral", 20, 0, "review", 7, ("year", 40)),
    ("harmony", "邻里和睦", "moral", 10, 0, "review", 3, ("month", 20)),
    ("courtyard", "美丽庭院", "moral", 15, 0, "review", 7, ("month", 15)),
    ("civilized_family", "文明家庭（半年一审核）", "moral", 50, 0, "review", 7, ("year", 50)),
    ("law_abiding", "遵纪守法", "moral", 5, 0, "review", 3, ("month", 5)),
    ("new_customs", "移风易俗（红白事简办）", "moral", 20, 0, "review", 7, ("year", 20)),
    ("visit_elderly", "探访空巢老人", "neighbour_help", 5, 60, "review", 3, ("week", 15)),
    ("left_behind", "关爱留守儿童", "neighbour_help", 5, 60, "review", 3, ("week", 15)),
    ("mediation", "矛盾纠纷调解", "neighbour_help", 10, 60, "review", 3, ("month", 30)),
    ("help_disabled", "帮扶残疾邻居", "neighbour_help", 5, 60, "auto", 3, ("week", 15)),
]
TASKS = [("clean_lane", "周六清扫槐树街"), ("clean_lane", "门前三包检查"), ("visit_elderly", "重阳节探访空巢老人"),
         ("vanguard_post", "党员先锋岗值守"), ("garbage_sorting", "垃圾分类宣传日")]
#: The last Saturday's task is for teams (points per team); tomorrow's takes teams, points per member.
TEAM_TASK = ("clean_lane", "以户为单位 · 庭院环境整治")
COMING_TEAM_TASK = ("volunteer_hour", "周日志愿服务 · 欢迎组队")
HELP = [("陪同去医院复查", 120), ("代买米面油", 60), ("修理水龙头", 60), ("辅导孩子作业", 90), ("打扫卫生", 120),
        ("读报聊天", 60), ("代缴水电费", 30), ("接送孩子放学", 60)]


def _morning(day, rng: random.Random, count: int) -> list[datetime]:
    """``count`` moments between 10:00 and 11:59 local of ``day``, in order.

    Each simulated day keeps the same order (check-ins, claims, help, review), so the ledger's
    times rise with its ids as they do in real life."""
    return sorted(datetime.combine(day, time(rng.randint(10, 11), rng.randint(0, 59)), local_zone())
                  for _ in range(count))


def _quietly(action, *args, **kwargs):
    """Run one demo action in a savepoint; a refusal (a cap, a full task) is skipped, as in real life."""
    savepoint = db.session.begin_nested()
    try:
        result = action(*args, **kwargs)
        savepoint.commit()
        return result
    except DomainError:
        savepoint.rollback()
        return None


def build(out=click.echo) -> DemoContext | None:
    if db.session.execute(select(Community.id).where(Community.code == DEMO_CODE)).first():
        out(f"the demo community {DEMO_CODE!r} exists: nothing done")
        return None
    app = current_app._get_current_object()
    previous = app.extensions.get("timebank.core.clock")
    end = now()
    start_day = end.astimezone(local_zone()).date() - timedelta(days=HISTORY_DAYS)
    history_start = datetime.combine(start_day, time(8), local_zone())
    # The community and its honours go back further: honours awarded half a year ago are due for review.
    clock = FrozenClock(history_start - timedelta(days=HONOURS_LEAD_DAYS))
    app.extensions["timebank.core.clock"] = clock
    rng = random.Random(20260301)
    try:
        context = _people(clock, rng, end)
        _honours_awarded(context)
        clock.set(history_start)
        context.start = history_start
        _history(context)
        clock.set(end)
        earning.close_publicity()
        _coming_team_task(context)
        _honours_reviewed(context)
        _deductions(context)
        _current.append(context)
        try:
            for extension in list(EXTENSIONS):
                result = extension(context)
                if result:
                    context.notes.append(f"shop: {result}")
        finally:
            _current.pop()
    finally:
        if previous is None:
            app.extensions.pop("timebank.core.clock", None)
        else:
            app.extensions["timebank.core.clock"] = previous
    return context


def _people(clock: FrozenClock, rng: random.Random, end: datetime) -> DemoContext:
    community = people.create_community(DEMO_CODE, DEMO_NAME)
    password_hash = hash_password(DEMO_PASSWORD)  # once: argon2 is slow on purpose
    households, residents = [], []
    colors = ["red"] * 10 + ["yellow"] * 15 + ["green"] * 35
    rng.shuffle(colors)
    phone = 13900000000
    for number, color in enumerate(colors, start=1):
        surname = SURNAMES[(number - 1) % len(SURNAMES)]
        grid = GRIDS[(number - 1) % 3][0]
        household = people.create_household(
            community, f"{surname}家", f"{rng.choice(STREETS)}{rng.randint(1, 88)}号", grid, color)
        households.append(household)
        # Red households are often one or two elderly people; others are larger families.
        size = rng.choice([1, 1, 2]) if color == "red" else rng.choice([2, 3, 3, 4])
        for _member in range(size):
            phone += 1
            name = surname + rng.choice(GIVEN)
            birth_year = rng.randint(1938, 1958) if color == "red" else rng.randint(1950, 2008)
            resident = people.create_resident(household, name, str(phone), None, birth_year)
            residents.append(resident)
            db.session.add(User(username=str(phone), password_hash=password_hash, role="resident",
                                community_id=community.id, resident_id=resident.id, phone=str(phone),
                                person_key=person_key_for(str(phone), resident.id)))
    for code, name in GRIDS:
        db.session.add(Grid(community_id=community.id, code=code, name=name))
    staff = {}
    for number, (username, role) in enumerate(DEMO_STAFF.items(), start=1):
        existing = db.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
        if existing is None:
            existing = User(username=username, password_hash=password_hash, role=role,
                            community_id=None if role == "admin" else community.id)
            if role != "admin":  # staff are people: each has a phone of their own
                existing.phone = f"1370000{number:04d}"
                existing.person_key = person_key_for(existing.phone, None)
            db.session.add(existing)
        staff[username] = existing
    # The grid worker lives in the community (household 1): the conflict-of-interest rule applies to them.
    grid_person = next(r for r in residents if r.household_id == households[0].id)
    staff["demo_grid"].resident = grid_person
    staff["demo_grid"].phone = grid_person.phone
    staff["demo_grid"].person_key = person_key_for(grid_person.phone, grid_person.id)
    db.session.flush()
    for grid in db.session.execute(select(Grid).where(Grid.community_id == community.id)).scalars():
        grid.worker_user_id = staff["demo_grid"].id
    committee = staff["demo_committee"]
    for code, title, category, points, minutes, review, days, cap in RULES:
        earning.create_rule(committee, community, code, title, category, points, review, minutes, days,
                            {"period": cap[0], "max_points": cap[1]} if cap else None)
    db.session.flush()
    return DemoContext(community=community, households=households, residents=residents, staff=staff,
                       clock=clock, random=rng, start=clock.now(), end=end)


#: The honour list (评优评先): code, title, points, days on the notice board, months held, review months.
HONOURS = [
    ("civilized_family", "文明家庭", 30, 7, 12, 6),
    ("best_family", "最美家庭", 20, 7, 12, 6),
    ("beautiful_courtyard", "美丽庭院", 10, 7, 12, 6),
]
#: The deduction items (扣分项, 村规民约): code, title, points, days on the notice board.
DEDUCTION_ITEMS = [
    ("litter", "乱倒垃圾、乱堆乱放", -5, 3),
    ("road_blocking", "占道经营、违规搭建", -10, 3),
    ("lavish_banquet", "红白事大操大办", -20, 7),
]


def _honours_awarded(ctx: DemoContext) -> None:
    """Half a year ago: the honour list, nominations by the grid worker, the committee's approval,
    a week on the notice board, then the awards (with their points)."""
    from timebank.earning import honours

    committee, grid = ctx.staff["demo_committee"], ctx.staff["demo_grid"]
    for code, title, points, days, term, review in HONOURS:
        honours.create_honour(committee, ctx.community, code, title, points, days, term, review)
    chosen = ctx.random.sample(ctx.households[1:], 5)  # not the grid worker's own household
    codes = ["civilized_family", "civilized_family", "best_family", "beautiful_courtyard", "beautiful_courtyard"]
    for household, code in zip(chosen, codes, strict=True):
        award = honours.nominate(grid, ctx.community, code, household.id, "群众推荐，网格员核实")
        honours.approve_award(committee, award)
    ctx.clock.advance(days=8)
    honours.close_publicity()


def _honours_reviewed(ctx: DemoContext) -> None:
    """Today: the half-yearly review puts the honours up for review; the committee has kept one and
    withdrawn one, the others wait for its decision."""
    from timebank.earning import honours

    committee = ctx.staff["demo_committee"]
    honours.review_due()
    waiting = db.session.execute(select(honours.HonourAward).where(
        honours.HonourAward.community_id == ctx.community.id, honours.HonourAward.status == "under_review")
        .order_by(honours.HonourAward.id)).scalars().all()
    if len(waiting) >= 3:
        honours.keep_award(committee, waiting[0], "半年复核：家庭和睦、热心公益，保留称号")
        honours.withdraw_award(committee, waiting[1], "家庭成员违反村规民约（占道搭建），撤销称号")


def _deductions(ctx: DemoContext) -> None:
    """Deduction items; two deductions applied in the last weeks (one larger than the wallet), one on
    the notice board now and one waiting for review."""
    from timebank.earning import deductions

    committee, grid = ctx.staff["demo_committee"], ctx.staff["demo_grid"]
    for code, title, points, days in DEDUCTION_ITEMS:
        deductions.create_item(committee, ctx.community, code, title, points, days)
    end = ctx.clock.now()
    others = ctx.households[1:]  # the grid worker enters; not of their own household
    applied = [(others[3], "road_blocking", "门前搭建彩钢棚，劝阻未改"),
               (others[7], "lavish_banquet", "婚宴超过规定桌数")]
    for household, code, note in applied:
        ctx.clock.set(end - timedelta(days=12))
        deduction = deductions.create_deduction(grid, ctx.community, code, household.id, None, note)
        deductions.approve_deduction(committee, deduction)
    ctx.clock.set(end)
    deductions.close_publicity()  # applied now, after their notice: never below zero
    ctx.clock.set(end - timedelta(days=1))
    on_board = deductions.create_deduction(grid, ctx.community, "litter", others[11].id, None,
                                           "在河道边倾倒生活垃圾，有照片")
    deductions.approve_deduction(committee, on_board)
    ctx.clock.set(end)
    deductions.create_deduction(grid, ctx.community, "litter", others[15].id, None, "楼道堆放杂物")
    deductions.set_black_list(committee, ctx.community, True)


def _login(resident: Resident) -> User:
    return db.session.execute(select(User).where(User.resident_id == resident.id, User.role == "resident")).scalar_one()


def _history(ctx: DemoContext) -> None:
    rng, clock, community = ctx.random, ctx.clock, ctx.community
    committee, grid = ctx.staff["demo_committee"], ctx.staff["demo_grid"]
    first_day = ctx.start.astimezone(local_zone()).date()
    today = ctx.end.astimezone(local_zone()).date()
    rule_codes = [r[0] for r in RULES]
    weights = [6, 8, 8, 3, 2, 1, 2, 2, 1, 1, 1, 5, 3, 1, 2]
    elderly = [r for r in ctx.residents if r.household.color == "red"]
    # The pool holds only what is put into it: the committee funds it before it pays for red households.
    clock.set(datetime.combine(first_day, time(9, 0), local_zone()))
    hours.fund_pool(committee, community, 100 * 60, "街道拨付的时间银行互助时数")
    day = first_day
    while day <= today:
        if day.weekday() == 5 and day + timedelta(days=7) > today:  # the last Saturday: a task for teams
            _team_task_day(ctx, day, rng)
        elif day.weekday() == 5:  # Saturday morning tasks with QR check-in
            _task_day(ctx, day, rng)
        # Residents claim, or a grid worker enters claims for those without phones (代录).
        for moment in _morning(day, rng, rng.randint(3, 9)):
            clock.set(moment)
            if clock.now() > ctx.end:
                break
            resident = rng.choice(ctx.residents)
            code = rng.choices(rule_codes, weights)[0]
            entered_by = grid if resident.household.color == "red" and rng.random() < 0.7 else _login(resident)
            _quietly(earning.create_claim, entered_by, community, code, resident.id, "")
        # Reviewers work in the afternoon: most claims pass, a few are rejected or meet an objection.
        if day.weekday() in (1, 4) and elderly:
            _help(ctx, day, rng, elderly)
        clock.set(datetime.combine(day, time(17, 30), local_zone()))
        if clock.now() <= ctx.end:
            _review(ctx, committee, grid, rng)
            earning.close_publicity()
        db.session.flush()
        day += timedelta(days=1)


def _review(ctx: DemoContext, committee: User, grid: User, rng: random.Random) -> None:
    from timebank.earning.models import Claim

    pending = db.session.execute(
        select(Claim).where(Claim.community_id == ctx.community.id, Claim.status == "pending").order_by(Claim.id)
    ).scalars().all()
    for claim in pending:
        if rng.random() < 0.15:
            continue  # still waiting for review
        # Nobody reviews their own household's claims, nor those they entered (代录).
        mine = claim.household_id == grid.household_id or claim.entered_by_user_id == grid.id
        reviewer = committee if mine or rng.random() < 0.5 else grid
        if rng.random() < 0.08:
            _quietly(earning.reject_claim, reviewer, claim,
                     rng.choice(["材料不全，请补充照片", "与实际情况不符", "重复申报"]))
        else:
            _quietly(earning.approve_claim, reviewer, claim)
    publicized = db.session.execute(
        select(Claim).where(Claim.community_id == ctx.community.id, Claim.status == "publicized")).scalars().all()
    for claim in publicized:
        if rng.random() < 0.03:
            neighbour = _login(rng.choice(ctx.residents))
            _quietly(earning.object_claim, neighbour, claim.id, "公示有异议：请核实")


def _task_day(ctx: DemoContext, day, rng: random.Random) -> None:
    code, title = rng.choice(TASKS)
    starts = datetime.combine(day, time(8, 0), local_zone())
    if starts > ctx.end:
        return
    ctx.clock.set(starts - timedelta(minutes=30))
    task = _quietly(tasks.create_task, ctx.staff["demo_committee"], ctx.community, code, title, starts,
                    starts + timedelta(hours=2), rng.randint(8, 20))
    if task is None:
        return
    attendees = rng.sample(ctx.residents, min(len(ctx.residents), rng.randint(5, 22)))
    for number, resident in enumerate(attendees):
        ctx.clock.set(starts + timedelta(minutes=number * 3))
        token = tasks.checkin_code(ctx.staff["demo_grid"], task)["token"]
        _quietly(tasks.check_in, _login(resident), token)


def _households_of_two(ctx: DemoContext, rng: random.Random, count: int) -> list[Household]:
    families = [h for h in ctx.households if sum(1 for m in h.members if m.active) >= 2]
    return rng.sample(families, min(count, len(families)))


def _team_task_day(ctx: DemoContext, day, rng: random.Random) -> None:
    """A task for teams (以户为单位, points per team): households go as teams and a group of neighbours
    forms one; each leader scans the code once for the whole team, and each team earns once."""
    code, title = TEAM_TASK
    starts = datetime.combine(day, time(8, 0), local_zone())
    if starts > ctx.end:
        return
    ctx.clock.set(starts - timedelta(minutes=30))
    task = _quietly(tasks.create_task, ctx.staff["demo_committee"], ctx.community, code, title, starts,
                    starts + timedelta(hours=2), 30, points_per="team")
    if task is None:
        return
    formed = []
    for household in _households_of_two(ctx, rng, 3):
        leader = next(m for m in household.members if m.active)
        team = _quietly(teams.create_team, _login(leader), task, "household")
        if team is not None:
            formed.append(team)
    free = [r for r in ctx.residents if teams.team_of(task, r.id) is None]
    leader, *others = rng.sample(free, 4)
    group = _quietly(teams.create_team, _login(leader), task, "group", "槐树街志愿小队")
    if group is not None:
        for resident in others:
            _quietly(teams.join_team, _login(resident), group)
        formed.append(group)
    for number, team in enumerate(formed):
        ctx.clock.set(starts + timedelta(minutes=5 + number * 4))
        token = tasks.checkin_code(ctx.staff["demo_grid"], task)["token"]
        _quietly(teams.check_in_team, _login(team.leader), team, token)


def _coming_team_task(ctx: DemoContext) -> None:
    """Tomorrow's task, points per member, with teams already formed: residents may still join one."""
    code, title = COMING_TEAM_TASK
    tomorrow = ctx.end.astimezone(local_zone()).date() + timedelta(days=1)
    starts = datetime.combine(tomorrow, time(8, 0), local_zone())
    task = _quietly(tasks.create_task, ctx.staff["demo_committee"], ctx.community, code, title, starts,
                    starts + timedelta(hours=3), 25)
    if task is None:
        return
    for household in _households_of_two(ctx, ctx.random, 2):
        _quietly(teams.create_team, _login(next(m for m in household.members if m.active)), task, "household")
    free = [r for r in ctx.residents if teams.team_of(task, r.id) is None]
    leader, joiner = ctx.random.sample(free, 2)
    group = _quietly(teams.create_team, _login(leader), task, "group", "邻里互助队")
    if group is not None:
        _quietly(teams.join_team, _login(joiner), group)


def _help(ctx: DemoContext, day, rng: random.Random, elderly: list[Resident]) -> None:
    import ledger
    from timebank.core import accounts

    ctx.clock.set(datetime.combine(day, time(12, rng.randint(0, 30)), local_zone()))
    if ctx.clock.now() > ctx.end:
        return
    requester = rng.choice(elderly if rng.random() < 0.6 else ctx.residents)
    title, minutes = rng.choice(HELP)
    grid = ctx.staff["demo_grid"]
    help_request = _quietly(hours.create_help_request, grid, requester.id, title, minutes)
    if help_request is None or rng.random() < 0.2:
        return  # stays open: a volunteer may still take it
    volunteers = [r for r in ctx.residents if r.household_id != requester.household_id]
    volunteer = rng.choice(volunteers)
    ctx.clock.advance(hours=1)
    if _quietly(hours.accept_help_request, _login(volunteer), help_request, volunteer.id) is None:
        return
    ctx.clock.advance(hours=rng.randint(1, 3))
    if ctx.clock.now() > ctx.end or rng.random() < 0.15:
        return  # accepted, not yet done
    paid_by_pool = requester.household.color == "red"
    held = ledger.balance(db.session, accounts.resident_minutes(requester.id))
    if paid_by_pool or held >= minutes:
        _quietly(hours.complete_help_request, grid, help_request)


def _notices_demo(ctx: DemoContext) -> None:
    """Notices: every approval, rejection, objection, credited claim and sale above told its people.
    An elderly neighbour without a phone (a claim entered by the grid worker) is told on paper, on
    the grid worker's printed list; the notes name a resident with unread notices."""
    from sqlalchemy import func

    from timebank.notices.models import Notification

    community, grid = ctx.community, ctx.staff["demo_grid"]
    household = people.create_household(community, "孙家", "和平巷9号", "2", "red")
    elder = people.create_resident(household, "孙桂兰", None, None, 1940)
    db.session.flush()
    made = _quietly(earning.create_claim, grid, community, "harmony", elder.id, "网格员代录：调解邻里纠纷")
    if made is not None:
        _quietly(earning.approve_claim, ctx.staff["demo_committee"], made)
    reader = db.session.execute(
        select(Resident, func.count(Notification.id)).join(Notification, Notification.resident_id == Resident.id)
        .where(Notification.community_id == community.id, Notification.read_at.is_(None))
        .group_by(Resident.id).order_by(func.count(Notification.id).desc(), Resident.id).limit(1)).first()
    total = db.session.execute(select(func.count(Notification.id))
                               .where(Notification.community_id == community.id)).scalar_one()
    if reader is not None:
        resident, unread = reader
        ctx.notes.append(f"notices: {total} written; {resident.name} ({resident.phone}) has {unread} unread on "
                         f"/me/notices; {elder.name} (no phone) is on the grid worker's printed list, /grid/notices")


def _print_logins(out, context: DemoContext | None) -> None:
    out("")
    out(f"demo community: {DEMO_NAME} ({DEMO_CODE})")
    out(f"logins (password for all: {DEMO_PASSWORD}):")
    for username, role in DEMO_STAFF.items():
        out(f"  {username:<16} {role}")
    if context is not None:
        sample = context.residents[:3]
        out("  residents log in with their phone number, e.g. "
            + ", ".join(f"{r.phone} ({r.name})" for r in sample))
        for note in context.notes:
            out(note)


@click.command("demo")
@click.option("--if-empty", is_flag=True, help="load only into a database without any community")
@with_appcontext
@boundary.command
def demo_command(if_empty):
    """Load the demo community with households, rules, tasks and three months of history (idempotent)."""
    if if_empty and db.session.execute(select(Community.id).limit(1)).first():
        click.echo("the database already holds communities: demo not loaded")
        return
    context = build()
    if context is None:
        _print_logins(click.echo, None)
        return
    from timebank.earning.models import Claim
    from timebank.hours.models import HelpRequest

    claims = db.session.query(Claim).filter_by(community_id=context.community.id).count()
    helps = db.session.query(HelpRequest).filter_by(community_id=context.community.id).count()
    task_count = db.session.query(Task).filter_by(community_id=context.community.id).count()
    team_count = db.session.query(TaskTeam).join(Task).filter(Task.community_id == context.community.id).count()
    click.echo(f"loaded {len(context.households)} households, {len(context.residents)} residents, "
               f"{len(RULES)} rules, {task_count} tasks ({team_count} teams), {claims} claims, "
               f"{helps} help requests")
    _print_logins(click.echo, context)
