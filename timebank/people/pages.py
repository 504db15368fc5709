"""The committee's and grid workers' household pages (户籍与积分卡): the roster with search and
filters, a page at a time (keyset, as the API), registering a household, the printable member cards
(any number: parts of 400, or every card streamed), and one household's page where its members
are changed, moved and marked as having left (人员变动).

Supervisors see them and change nothing (every POST refused); forms carry the CSRF token and a
one-time ``form_key``.
"""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, stream_template, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select

from ledger.models import Account
from timebank.core import accounts
from timebank.core.audit_log import record
from timebank.core.clock import local_today
from timebank.core.database import reading
from timebank.core.errors import DomainError, ValidationFailed
from timebank.core.extensions import db
from timebank.core.pages import check_form, form_number, qr_svg, roles_required
from timebank.core.policy import require_community, visible_household, visible_resident
from timebank.people import memberships, roster
from timebank.people import operations as people
from timebank.people import staff_pages as staff
from timebank.people.api import ResidentIn
from timebank.people.models import COLORS, Household, Resident
from timebank.people.roster_api import DeactivateIn, HouseholdListArgs, HouseholdPatch, MoveIn, ResidentPatch
from timebank.people.staff_pages import can_write, me, refuse_supervisor_writes

bp = Blueprint("web_people", __name__, url_prefix="/committee")
bp.before_request(refuse_supervisor_writes)

#: Who opens the pages (admin always). Supervisors read; the operations decide who may write.
READERS = ("committee", "grid_worker", "supervisor")


# --- households and their cards (户籍与积分卡) --------------------------------------------------------

#: Households on one page of the roster, and cards in one part of the card sheet (50 A4 pages).
PAGE_SIZE = 100
CARDS_PER_PART = 400
CARDS_PER_SHEET = 8


def _filters() -> dict:
    """The roster's filters from the query string, bounded as the API bounds them."""
    grid = (request.args.get("grid") or "").strip() or None
    color = request.args.get("color") or None
    text = (request.args.get("q") or "").strip() or None
    check_form(HouseholdListArgs(), {"grid": grid, "color": color, "q": text})
    return {"grid": grid, "color": color, "q": text}


def _links(place, filters: dict) -> dict:
    """The query of the links to further pages: the filters, and the community an admin chose."""
    args = {k: v for k, v in filters.items() if v}
    if me().role == "admin":
        args["community"] = place.code
    return args


def _households(place_id: int):
    filters = _filters()
    ids = request.args.getlist("id", type=int) or None
    return roster.household_query(place_id, filters["q"], filters["grid"], filters["color"], ids), filters


def _refused(exc: DomainError):
    db.session.rollback()
    flash(staff.message(exc), "error")
    return redirect(url_for(".households"))


@bp.route("/households", methods=["GET", "POST"])
@roles_required(*READERS)
def households():
    place = staff.place()
    user = me()
    if request.method == "POST":
        form = request.form

        def act():
            require_community(user, place.id, "committee", "grid_worker")
            name = (form.get("name") or "").strip()[:200]
            if not name:
                raise ValidationFailed(errors={"name": [_("A household has a name.")]})
            household = people.create_household(place, name, (form.get("address") or "").strip()[:300],
                                                (form.get("grid") or "").strip()[:64] or None, form.get("color"))
            first = (form.get("resident") or "").strip()[:100]
            if first:
                people.create_resident(household, first, phone=(form.get("phone") or "").strip()[:32] or None)
            record("household.create", user=user, target=f"household:{household.id}", community_id=place.id,
                   via="web")
            return household

        return staff.write_once(act, lambda h: _("Household %(name)s registered; card code %(code)s.", name=h.name,
                                       code=h.member_code), url_for(".households"))
    try:
        query, filters = _households(place.id)
        rows, next_cursor = roster.household_page(query, PAGE_SIZE, request.args.get("cursor"))
    except DomainError as exc:
        return _refused(exc)
    filter_args = _links(place, filters)
    guests = memberships.guests_of(place.id)
    return render_template("committee/households.html", households=rows, filters=filters,
                           guests=[(m, memberships.wallet_points(m)) for m in guests],
                           can_host=can_write(*memberships.HOSTS), today=local_today(),
                           grids=roster.grids(place.id), filter_args=filter_args, total=roster.count(query),
                           next_cursor=next_cursor, paged=bool(request.args.get("cursor")),
                           colors=COLORS, balances=roster.balances([h.id for h in rows]),
                           can_register=can_write("committee", "grid_worker"))


@bp.post("/guests")
@roles_required(*READERS)
def guests():
    """Take a person of another community in as a guest (候鸟, 流动党员), found by their phone: the
    committee of this community (``POST /api/v1/residents/{id}/memberships``)."""
    place = staff.place()
    back = url_for(".households")

    def act():
        phone = (request.form.get("phone") or "").strip()[:32]
        until = _date(request.form.get("until"))
        person = db.session.execute(select(Resident).where(Resident.phone == phone)).scalar_one_or_none() \
            if phone else None
        if person is None:
            raise ValidationFailed(errors={"phone": [_("Nobody in this deployment has this phone number.")]})
        membership, _new = memberships.take_in(me(), person, place, until)
        return membership

    return staff.write_once(act, lambda m: _("%(name)s is a guest here until %(until)s.", name=m.resident.name,
                                             until=m.until.isoformat()), back)


def _date(text: str | None):
    try:
        return date.fromisoformat((text or "").strip())
    except ValueError:
        raise ValidationFailed(errors={"until": [_("A date, such as 2026-08-31.")]}) from None


def _household_card(household: Household) -> dict:
    return {"household": household, "code": household.member_code, "qr": qr_svg(household.member_code, 4),
            "title": _("Points card"), "name": household.name,
            "meta": [household.address + (" · " + _("Grid") + " " + household.grid if household.grid else ""),
                     "、".join(m.name for m in household.members if m.active)]}


def _person_card(household: Household, member: Resident) -> dict:
    """A member's own card: their code (``R...``), which the till, the 代录 form, the desk and check-in
    read as this person (the points still go to and come from the household)."""
    return {"household": household, "code": member.member_code, "qr": qr_svg(member.member_code, 4),
            "title": _("Member card"), "name": member.name,
            "meta": [household.name + (" · " + household.address if household.address else ""),
                     _("Grid") + " " + household.grid if household.grid else ""]}


def _cards_of(household: Household, per_person: bool) -> list[dict]:
    if not per_person:
        return [_household_card(household)]
    return [_person_card(household, m) for m in household.members if m.active]


def _sheets(query, cursor: str | None, most: int | None, per_person: bool = False, seen: dict | None = None):
    """Sheets of eight cards, read a batch of households at a time (keyset, as the roster pages): a
    card per household, or one per active member. ``most`` counts households; ``seen`` is told the
    last household read and how many."""
    done = 0
    sheet: list[dict] = []
    seen = seen if seen is not None else {}
    while most is None or done < most:
        batch = CARDS_PER_SHEET * 25 if most is None else min(CARDS_PER_SHEET * 25, most - done)
        rows, cursor = roster.household_page(query, batch, cursor)
        for household in rows:
            for card in _cards_of(household, per_person):
                sheet.append(card)
                if len(sheet) == CARDS_PER_SHEET:
                    yield sheet
                    sheet = []
        done += len(rows)
        if rows:
            seen["last"] = [rows[-1].grid or "", rows[-1].name, rows[-1].id]
        seen["households"] = done
        for household in rows:  # a long print keeps no more than one batch in the session
            for member in household.members:
                db.session.expunge(member)
            db.session.expunge(household)
        if cursor is None:
            break
    if sheet:
        yield sheet


def _streamed_sheets(query, per_person: bool):
    # Read after the request's commit, in reading transactions: a print of 12,000 cards never holds up
    # the writers (as the ledger export, timebank.audit.ledger_browser).
    with reading():
        yield from _sheets(query, None, None, per_person)


def _buffered(chunks, size: int = 64 * 1024):
    """Jinja yields many small pieces; send them in blocks."""
    parts, length = [], 0
    for chunk in chunks:
        parts.append(chunk)
        length += len(chunk)
        if length >= size:
            yield "".join(parts)
            parts, length = [], 0
    if parts:
        yield "".join(parts)


def _people_count(query) -> int:
    """Active members of the households of ``query``: the cards of a print per person."""
    households = query.order_by(None).with_only_columns(Household.id).subquery()
    return db.session.execute(select(func.count(Resident.id)).where(
        Resident.household_id.in_(select(households.c.id)), Resident.active.is_(True))).scalar_one()


@bp.get("/households/cards")
@roles_required(*READERS)
def cards():
    """A4 sheets of member cards with QR codes, eight a page, for the households of the filter (or the
    ``id`` chosen): however many. ``per=person`` prints a card for each member (their own code) instead
    of one per household. A part of 400 households at a time with a link to the next part, or with
    ``all=1`` every card in one document, streamed as it is drawn."""
    place = staff.place()
    per_person = request.args.get("per") == "person"
    try:
        query, filters = _households(place.id)
        households = roster.count(query)
        start = max(1, request.args.get("start", 1, type=int) or 1)
        # Plain values only: the streamed document is drawn after the request's commit.
        base_args = _links(place, filters)
        filter_args = dict(base_args)
        if per_person:
            filter_args["per"] = "person"
        context = {"place_name": place.name, "count": _people_count(query) if per_person else households,
                   "households": households, "per_person": per_person, "filter_args": filter_args,
                   "base_args": base_args,
                   "ids": request.args.getlist("id", type=int)}
        if request.args.get("all"):
            chunks = stream_template("committee/cards.html", pages=_streamed_sheets(query, per_person), whole=True,
                                     start=1, next_cursor=None, **context)
            return Response(_buffered(chunks), mimetype="text/html")
        cursor = request.args.get("cursor")
        seen: dict = {}
        pages = list(_sheets(query, cursor, CARDS_PER_PART, per_person, seen))
        shown = seen.get("households", 0)
        next_cursor = None
        if shown == CARDS_PER_PART and start - 1 + shown < households:
            next_cursor = roster.encode_key(seen["last"])
    except DomainError as exc:
        return _refused(exc)
    return render_template("committee/cards.html", pages=pages, whole=False, start=start, shown=shown,
                           next_cursor=next_cursor, **context)


# --- one household: its members, their changes (人员变动) --------------------------------------------

def _household(household_id: int) -> Household:
    household = visible_household(me(), db.session.get(Household, household_id))
    require_community(me(), household.community_id, *READERS)
    return household


def _resident(resident_id: int) -> Resident:
    resident = visible_resident(me(), db.session.get(Resident, resident_id))
    require_community(me(), resident.household.community_id, *READERS)
    return resident


def _text(name: str) -> str | None:
    value = (request.form.get(name) or "").strip()
    return value or None


@bp.get("/households/<int:household_id>")
@roles_required(*READERS)
def household(household_id: int):
    """A household: its members (active and former), points, each member's minutes, the care-label
    history, and the forms that change them."""
    found = _household(household_id)
    members = list(found.members)
    minutes = dict(db.session.execute(select(Account.code, Account.balance).where(
        Account.code.in_([accounts.resident_minutes(m.id) for m in members]))).all()) if members else {}
    return render_template("committee/household.html", household=found, members=members,
                           minutes={m.id: minutes.get(accounts.resident_minutes(m.id), 0) for m in members},
                           balance=roster.balances([found.id]).get(found.id, 0),
                           history=roster.care_label_history(found.id), colors=COLORS,
                           away={m.id: memberships.of_resident(m.id) for m in members}, today=local_today(),
                           can_edit=can_write(*roster.EDITORS), panels=household_panels(found),
                           can_add_member=can_write("committee"))


#: Where other features add a section to the household's page: functions ``panel(household)`` that
#: return HTML (``Markup``) or None, registered in ``app.extensions["timebank.household_panels"]``
#: (the ranking score, honours and deductions: :mod:`timebank.reports.pages`).
PANELS = "timebank.household_panels"


def household_panels(household: Household) -> list:
    shown = (panel(household) for panel in current_app.extensions.get(PANELS, []))
    return [html for html in shown if html]


@bp.post("/households/<int:household_id>/change")
@roles_required(*READERS)
def change_household(household_id: int):
    back = url_for(".household", household_id=household_id)

    def act():
        found = _household(household_id)
        changes = {"name": _text("name"), "address": _text("address") or "", "grid": _text("grid"),
                   "color": _text("color")}
        reason = _text("reason") or ""
        check_form(HouseholdPatch(), {**changes, "reason": reason})
        if changes["name"] is None:
            raise ValidationFailed(errors={"name": [_("A household has a name.")]})
        if changes["color"] is None:
            del changes["color"]
        return roster.change_household(me(), found, changes, reason)

    return staff.write_once(act, lambda done: _("Saved.") if done else _("Nothing was changed."), back)


@bp.post("/households/<int:household_id>/members")
@roles_required(*READERS)
def add_member(household_id: int):
    """Add a resident to a household that exists: the committee only, as the API
    (``POST /api/v1/residents``), bounded by its schema, written to the audit log."""
    back = url_for(".household", household_id=household_id)

    def act():
        found = _household(household_id)
        user = me()
        require_community(user, found.community_id, "committee")
        data = {"name": _text("name"), "phone": _text("phone"),
                "birth_year": form_number(request.form.get("birth_year"))}
        check_form(ResidentIn(), {"household_id": found.id, **data})
        if data["name"] is None:
            raise ValidationFailed(errors={"name": [_("A resident has a name.")]})
        resident = people.create_resident(found, data["name"], phone=data["phone"], birth_year=data["birth_year"])
        record("resident.create", user=user, target=f"resident:{resident.id}", community_id=found.community_id,
               household_id=found.id, name=resident.name, login=False, via="web")
        return resident

    return staff.write_once(act, lambda r: _("%(name)s added; card code %(code)s.", name=r.name,
                                             code=r.member_code), back)


@bp.post("/residents/<int:resident_id>/change")
@roles_required(*READERS)
def change_resident(resident_id: int):
    resident = _resident(resident_id)
    back = url_for(".household", household_id=resident.household_id)

    def act():
        changes = {"name": _text("name"), "phone": _text("phone"),
                   "birth_year": form_number(request.form.get("birth_year"))}
        reason = _text("reason") or ""
        check_form(ResidentPatch(), {**changes, "reason": reason})
        if changes["name"] is None:
            raise ValidationFailed(errors={"name": [_("A resident has a name.")]})
        return roster.change_resident(me(), resident, changes, reason)

    return staff.write_once(act, lambda done: _("Saved.") if done else _("Nothing was changed."), back)


@bp.post("/residents/<int:resident_id>/move")
@roles_required(*READERS)
def move_resident(resident_id: int):
    resident = _resident(resident_id)
    back = url_for(".household", household_id=resident.household_id)

    def act():
        code = (_text("household_code") or "").upper()
        reason = _text("reason") or ""
        check_form(MoveIn(), {"reason": reason})
        target = db.session.execute(select(Household).where(Household.member_code == code)).scalar_one_or_none() \
            if code else None
        if target is None:
            raise ValidationFailed(errors={"household_code": [_("No household has this card code.")]})
        moved = roster.move_resident(me(), resident, target, reason)
        return moved, target

    return staff.write_once(act, lambda result: _("%(name)s now lives in household %(household)s.",
                                                  name=result[0].name, household=result[1].name), back)


@bp.post("/residents/<int:resident_id>/deactivate")
@roles_required(*READERS)
def deactivate_resident(resident_id: int):
    resident = _resident(resident_id)
    back = url_for(".household", household_id=resident.household_id)

    def act():
        reason = _text("reason") or ""
        check_form(DeactivateIn(), {"reason": reason})
        return roster.deactivate_resident(me(), resident, reason)

    return staff.write_once(act, lambda r: _("%(name)s is marked as having left; their logins are closed.",
                                             name=r.name), back)


def init_app(app) -> None:
    staff.register(app)
    app.register_blueprint(bp)
