"""Names and units of the ledger accounts the application uses, and opening them.

The ledger sees only these strings, and the units it is told (:data:`UNITS`, declared to it by
:func:`timebank.core.ledgering.configure`). Wallets and the community's time-bank pool may not go
negative; issuance and sink accounts may (an issuance account's negative balance is what the
community has given out). The pool holds only what was put into it (funding, gifts, the excess over
the stored-hours cap).
"""

from __future__ import annotations

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

import ledger
from ledger import driver
from timebank.core.clock import utc_naive
from timebank.core.extensions import Model

CATEGORIES = ("volunteer", "red", "moral", "neighbour_help")

#: Households' points (积分) and residents' time-bank minutes.
POINTS, MINUTES = "points", "minutes"
#: Every unit the application keeps accounts in. The migrations' CHECK constraints name exactly
#: these, in this order: changing them needs a migration.
UNITS = (POINTS, MINUTES)


class AccountOwner(Model):
    """Which community (and household or resident) a ledger account belongs to.

    The ledger knows only account codes; this table lets the application scope the ledger browser
    and reports to a community without parsing codes.
    """

    __tablename__ = "account_owners"

    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"), primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"), index=True)
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"), index=True)


def _own(session, account_id: int, community_id: int, household_id=None, resident_id=None) -> None:
    if session.get(AccountOwner, account_id) is None:
        session.add(AccountOwner(account_id=account_id, community_id=community_id,
                                 household_id=household_id, resident_id=resident_id))
        session.flush()


def household_points(household_id: int) -> str:
    return f"household:{household_id}:points"


def resident_minutes(resident_id: int) -> str:
    return f"resident:{resident_id}:minutes"


def guest_points(resident_id: int, community_id: int) -> str:
    """A guest's wallet (候鸟, 流动党员) in a host community: the points the person earned there, which
    its supermarket charges. Owned by the host community and the person (no household)."""
    return f"guest:{resident_id}:{community_id}:points"


def issuance_points(community_id: int, category: str) -> str:
    return f"community:{community_id}:issuance:{category}"


def issuance_minutes(community_id: int) -> str:
    return f"community:{community_id}:issuance:minutes"


def opening_points(community_id: int) -> str:
    """Where opening balances (期初积分) carried over from the paper ledger at a roster import come
    from: an issuance account of its own, beside the categories', so that they are not counted as
    points earned in the month of the import."""
    return issuance_points(community_id, "opening")


def pool_minutes(community_id: int) -> str:
    """The community's time-bank pool: the committee's funding, gifts, the excess over the stored-hours cap;
    pays for red households' help. Never below zero, like a wallet."""
    return f"community:{community_id}:pool:minutes"


def expired_points(community_id: int) -> str:
    return f"community:{community_id}:expired:points"


def deducted_points(community_id: int) -> str:
    """Where deductions (扣分) take points from wallets: a sink, like expiry's. A deduction never takes
    more than the wallet holds; the rest counts against the ranking score only (not on the ledger)."""
    return f"community:{community_id}:deducted:points"


def supermarket_points(community_id: int) -> str:
    """Where redeemed points go: the love supermarket's takings."""
    return f"community:{community_id}:supermarket:points"


def partner_points(community_id: int, partner_id: int) -> str:
    """Where points redeemed at a partner shop (爱心商家) of the community go: its takings, against
    which the community settles with it month by month."""
    return f"community:{community_id}:partner:{partner_id}:points"


def open_partner(session, community_id: int, partner_id: int) -> str:
    """Open a partner shop's points account (as the supermarket's: it may go below zero)."""
    code = partner_points(community_id, partner_id)
    _own(session, ledger.open_account(session, code, POINTS, True, now=utc_naive()), community_id)
    return code


def open_household(session, household) -> str:
    code = household_points(household.id)
    account_id = ledger.open_account(session, code, POINTS, allow_negative=False, now=utc_naive())
    _own(session, account_id, household.community_id, household_id=household.id)
    return code


def open_resident(session, resident, community_id: int) -> str:
    code = resident_minutes(resident.id)
    account_id = ledger.open_account(session, code, MINUTES, allow_negative=False, now=utc_naive())
    _own(session, account_id, community_id, household_id=resident.household_id, resident_id=resident.id)
    return code


def open_guest_wallet(session, resident_id: int, community_id: int) -> str:
    """Open the person's guest wallet in the host community (:func:`guest_points`) if need be."""
    code = guest_points(resident_id, community_id)
    account_id = ledger.open_account(session, code, POINTS, allow_negative=False, now=utc_naive())
    _own(session, account_id, community_id, resident_id=resident_id)
    return code


def open_community(session, community_id: int) -> None:
    now = utc_naive()
    wanted = [(issuance_points(community_id, c), POINTS, True) for c in CATEGORIES] + [
        (issuance_minutes(community_id), MINUTES, True),
        (pool_minutes(community_id), MINUTES, False),
        (expired_points(community_id), POINTS, True),
        (supermarket_points(community_id), POINTS, True),
    ]
    for code, unit, may_go_negative in wanted:
        _own(session, ledger.open_account(session, code, unit, may_go_negative, now=now), community_id)


def open_opening(session, community_id: int) -> str:
    """Open the community's opening-balance issuance account (:func:`opening_points`) if need be."""
    code = opening_points(community_id)
    _own(session, ledger.open_account(session, code, POINTS, True, now=utc_naive()), community_id)
    return code


def open_deductions(session, community_id: int) -> str:
    """Open the community's deductions account (:func:`deducted_points`) if need be: communities made
    before deductions existed get it at their first deduction."""
    code = deducted_points(community_id)
    _own(session, ledger.open_account(session, code, POINTS, True, now=utc_naive()), community_id)
    return code


def open_many(session, community_id: int, household_ids=(), residents=()) -> None:
    """Open the wallets of many new households and residents (``(resident_id, household_id)``) at
    once, with their owners: what :func:`open_household` and :func:`open_resident` do, in a few
    statements per few hundred accounts (a roster import opens tens of thousands)."""
    owners = {household_points(h): (h, None) for h in household_ids}
    owners.update({resident_minutes(r): (h, r) for r, h in residents})
    specs = [(code, POINTS if resident is None else MINUTES, False) for code, (_h, resident) in owners.items()]
    ids = ledger.open_accounts(session, specs, now=utc_naive())
    driver.insert_rows(session, AccountOwner.__tablename__,
                       ("account_id", "community_id", "household_id", "resident_id"),
                       [(ids[code], community_id, h, r) for code, (h, r) in owners.items()])
