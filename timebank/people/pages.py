"""The committee's and grid workers' household pages (户籍与积分卡): the roster with search and
filters, registering a household, and the printable member cards.

Supervisors see them and change nothing (every POST refused); forms carry the CSRF token and a
one-time ``form_key``.
"""

from __future__ import annotations

from flask import Blueprint, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import or_, select

from ledger.models import Account
from timebank.core import accounts
from timebank.core.audit_log import record
from timebank.core.errors import ValidationFailed
from timebank.core.extensions import db
from timebank.core.pages import qr_svg, roles_required
from timebank.core.policy import require_community
from timebank.people import operations as people
from timebank.people import staff_pages as staff
from timebank.people.models import COLORS, Household
from timebank.people.staff_pages import can_write, me, refuse_supervisor_writes

bp = Blueprint("web_people", __name__, url_prefix="/committee")
bp.before_request(refuse_supervisor_writes)

#: Who opens the pages (admin always). Supervisors read; the operations decide who may write.
READERS = ("committee", "grid_worker", "supervisor")


# --- households and their cards (户籍与积分卡) --------------------------------------------------------

def _households(place_id: int):
    grid, color, text = request.args.get("grid") or None, request.args.get("color") or None, \
        (request.args.get("q") or "").strip()
    query = select(Household).where(Household.community_id == place_id)
    if grid:
        query = query.where(Household.grid == grid)
    if color in COLORS:
        query = query.where(Household.color == color)
    if text:
        query = query.where(or_(Household.name.contains(text, autoescape=True),
                                Household.address.contains(text, autoescape=True),
                                Household.member_code == text))
    return query.order_by(Household.grid, Household.name, Household.id), {"grid": grid, "color": color, "q": text}


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
    query, filters = _households(place.id)
    rows = db.session.execute(query.limit(300)).scalars().all()
    grids = [g for (g,) in db.session.execute(
        select(Household.grid).where(Household.community_id == place.id).distinct().order_by(Household.grid)) if g]
    balances = _balances([h.id for h in rows])
    return render_template("committee/households.html", households=rows, filters=filters, grids=grids,
                           filter_args={k: v for k, v in filters.items() if v},
                           colors=COLORS, balances=balances, can_register=can_write("committee", "grid_worker"))


def _balances(household_ids: list[int]) -> dict[int, int]:
    if not household_ids:
        return {}
    codes = {accounts.household_points(i): i for i in household_ids}
    rows = db.session.execute(select(Account.code, Account.balance).where(Account.code.in_(list(codes))))
    return {codes[code]: balance for code, balance in rows}


@bp.get("/households/cards")
@roles_required(*READERS)
def cards():
    """An A4 sheet of member cards with QR codes, eight a page, for the households of the filter."""
    place = staff.place()
    query, filters = _households(place.id)
    rows = db.session.execute(query.limit(400)).scalars().all()
    only = request.args.getlist("id", type=int)
    if only:
        rows = [h for h in rows if h.id in set(only)]
    cards = [{"household": h, "qr": qr_svg(h.member_code, 4),
              "members": "、".join(m.name for m in h.members)} for h in rows]
    pages = [cards[i:i + 8] for i in range(0, len(cards), 8)]
    return render_template("committee/cards.html", place=place, pages=pages, count=len(cards))


def init_app(app) -> None:
    staff.register(app)
    app.register_blueprint(bp)
