"""The time bank (时间银行): neighbour help paid in minutes, gifts of minutes, and the stored-hours cap.

* Minutes are integers. Half-hour steps are usual in the field but not enforced.
* A resident holds at most ``communities.hours_cap_minutes`` (default 1,500 hours, Nanjing's rule);
  earned minutes beyond it go to the community's pool (:func:`minute_legs`).
* Completing a help request moves its minutes from the requester to the volunteer; a requester whose
  household is labelled ``red`` is paid for by the community pool. Without enough minutes: 409
  ``insufficient_hours``.
* Gifts (:func:`transfer`) go to kin in the same household or to the community pool.
* Minutes are the person's across the deployment: a volunteer helps in any community of their own
  sub-district (one with a community above both), and where they are a guest (:func:`may_help_in`).
  The minutes leave the requester's account and reach the volunteer's, whichever community each
  belongs to; the cap and the pool of the request's community apply.

Insider rules (nobody mints or moves value alone):

* personal minutes: a resident's minutes are moved only by that resident, or by staff acting for
  them (recorded: ``created_by_user_id``, ``completed_by_user_id``, the audit log); a member of the
  same household gets 403 ``forbidden`` (:func:`_acts_for`).
* self_dealing: the volunteer is never of the requester's household (403).
* pool funding: the pool holds only what the committee put into it (:func:`fund_pool`) and what was
  given to it; its account may not go below zero (ledger and database, like a wallet), so a payment
  it cannot cover is 409 ``insufficient_hours``.
* staff confirmation: pool-paid help is confirmed by a grid worker or the committee; the requester's
  own confirmation is refused with 403 ``forbidden`` (:func:`needs_staff_confirmation`).
"""

from __future__ import annotations

from sqlalchemy import select

import ledger
import ledger.core
from timebank.core import accounts, ledgering
from timebank.core.audit_log import record
from timebank.core.clock import local_today, utc_naive
from timebank.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from timebank.core.extensions import db
from timebank.core.policy import can_see_community, require_community
from timebank.core.users import User
from timebank.hours.models import HelpRequest
from timebank.people.models import Community, GuestMembership, Resident, lineage, related, subtree

#: Staff who act for residents in the time bank (enter requests, confirm help on their behalf).
HELPING_STAFF = ("committee", "grid_worker")


def minute_legs(resident: Resident, community: Community, minutes: int, source: str) -> list[ledger.Leg]:
    """Legs crediting ``minutes`` earned by ``resident`` from ``source``; what would pass the stored-hours
    cap goes to the community pool instead. Call inside the ledger transaction being built."""
    held = ledger.balance(db.session, accounts.resident_minutes(resident.id))
    # A resident who has left receives nothing more (a claim approved before they left still posts its
    # points to the household; its minutes go to the pool, as the excess over the cap does).
    room = max(0, community.hours_cap_minutes - held) if resident.active else 0
    kept = min(minutes, room)
    legs = [ledger.Leg(source, -minutes)]
    if kept:
        legs.append(ledger.Leg(accounts.resident_minutes(resident.id), kept))
    if minutes - kept:
        pool = accounts.pool_minutes(community.id)
        if source == pool:  # pool to pool: nothing moves for the excess
            legs[0] = ledger.Leg(source, -kept)
        else:
            legs.append(ledger.Leg(pool, minutes - kept))
    return [leg for leg in legs if leg.amount]


def _resident(resident_id: int, field: str) -> Resident:
    resident = db.session.get(Resident, resident_id)
    if resident is None:
        raise ValidationFailed(errors={field: ["No such resident."]})
    if not resident.active:
        raise Conflict("This resident has left; their minutes move no more.", code="resident_inactive")
    return resident


def _acts_for(user: User, resident: Resident, *staff_roles: str) -> None:
    """personal minutes: a resident acts only for themselves (not for kin: their minutes are theirs);
    staff with ``staff_roles`` act for residents of their community, and it is recorded."""
    if user.role == "resident":
        if user.resident_id != resident.id:
            raise Forbidden("A resident's minutes are moved by that resident, or by staff for them.")
        return
    require_community(user, resident.household.community_id, *staff_roles)


def needs_staff_confirmation(help_request: HelpRequest) -> bool:
    """Help paid by the community pool (the requester's household is labelled red) is confirmed by a grid
    worker or the committee, never by the requester alone."""
    return help_request.requester.household.color == "red"


def _post(community_id: int, legs, **kw):
    try:
        return ledgering.post(community_id, legs, **kw)
    except ledger.InsufficientFunds as exc:
        raise Conflict("Not enough minutes in the time bank.", code="insufficient_hours") from exc


def create_help_request(user: User, resident_id: int, title: str, minutes: int) -> HelpRequest:
    requester = _resident(resident_id, "resident_id")
    _acts_for(user, requester, *HELPING_STAFF)
    help_request = HelpRequest(community_id=requester.household.community_id, requester_id=requester.id,
                               title=title, minutes=minutes, status="open", created_by_user_id=user.id)
    db.session.add(help_request)
    db.session.flush()
    return help_request


def visible_help_request(user: User, help_request_id: int) -> HelpRequest:
    help_request = db.session.get(HelpRequest, help_request_id)
    if help_request is None:
        raise NotFound("No such help request.")
    if user.role == "resident":
        # Residents see open requests of the communities they may help in (to volunteer) and their own
        # household's.
        own = user.household_id in (help_request.requester.household_id,
                                    help_request.volunteer.household_id if help_request.volunteer else None)
        neighbour = user.resident is not None and may_help_in(user.resident, help_request.community_id)
        if not own and not (help_request.status == "open" and neighbour):
            raise NotFound("No such help request.")
        return help_request
    if not can_see_community(user, help_request.community_id):
        raise NotFound("No such help request.")
    return help_request


def help_communities(resident: Resident) -> list[int]:
    """The communities whose open requests the resident may take (:func:`may_help_in`): their own, every
    community of their sub-district's tree (below the top one), and those where they are a guest today."""
    chain = lineage(resident.household.community_id)
    ids = [c for c in subtree(chain[-1]) if c != chain[-1]] if len(chain) > 1 else chain[:1]
    hosts = db.session.execute(select(GuestMembership.community_id).where(
        GuestMembership.resident_id == resident.id, GuestMembership.until >= local_today())).scalars()
    return ids + [c for c in hosts if c not in ids]


def may_help_in(resident: Resident, community_id: int) -> bool:
    """Minutes are the person's across the deployment: a resident helps in their own community, in
    one where they are a guest today, and in any community that shares a community above theirs (two
    社区 of one 街道)."""
    home = resident.household.community_id
    return related(home, community_id) or resident.is_guest_in(community_id)


def _locked(help_request: HelpRequest) -> HelpRequest:
    """Re-read the request under a row lock (PostgreSQL), so two accepts or completes cannot both win."""
    db.session.refresh(help_request, with_for_update=True)
    return help_request


def accept_help_request(user: User, help_request: HelpRequest, volunteer_id: int) -> HelpRequest:
    volunteer = _resident(volunteer_id, "volunteer_id")
    _acts_for(user, volunteer, *HELPING_STAFF)
    if not may_help_in(volunteer, help_request.community_id):
        raise ValidationFailed(errors={"volunteer_id": ["The volunteer lives in a community outside this one's "
                                                        "sub-district and is not a guest here."]})
    if volunteer.household_id == help_request.requester.household_id:
        raise Forbidden("The volunteer is never of the requester's household.", code="self_dealing")
    _locked(help_request)
    if help_request.status != "open":
        raise Conflict(f"The request is {help_request.status}, not open.", code="help_request_not_open")
    help_request.volunteer_id = volunteer.id
    help_request.status = "accepted"
    help_request.accepted_at = utc_naive()
    db.session.flush()
    if user.role != "resident":
        record("help_request.accept", user=user, target=f"help_request:{help_request.id}",
               volunteer_id=volunteer.id)
    return help_request


def complete_help_request(user: User, help_request: HelpRequest) -> HelpRequest:
    """Pay the volunteer: from the requester, or from the pool for a red household."""
    requester = help_request.requester
    if user.role == "resident":
        if user.resident_id != requester.id:
            raise Forbidden("Only the requester, or a grid worker for them, confirms the help.")
        if needs_staff_confirmation(help_request):
            raise Forbidden("Help paid by the community pool is confirmed by a grid worker or the committee.")
    else:
        require_community(user, help_request.community_id, *HELPING_STAFF)
    _locked(help_request)
    if help_request.status != "accepted":
        raise Conflict(f"The request is {help_request.status}, not accepted.", code="help_request_not_accepted")
    if not help_request.volunteer.active:
        raise Conflict("The helper has left; they receive no minutes.", code="resident_inactive")
    community = db.session.get(Community, help_request.community_id)
    red = requester.household.color == "red"
    source = accounts.pool_minutes(community.id) if red else accounts.resident_minutes(requester.id)
    if red:
        _cover_from_pool(community.id, help_request.minutes)
    legs = minute_legs(help_request.volunteer, community, help_request.minutes, source)
    # From the pool to a volunteer already at the cap nothing moves, and nothing is posted.
    tx = _post(community.id, legs, kind="help", category="neighbour_help",
               memo=f"{help_request.title}: {requester.name} -> {help_request.volunteer.name}",
               actor=user.actor, reference=f"help_request:{help_request.id}",
               idempotency_key=f"help_request:{help_request.id}:complete") if legs else None
    help_request.status = "completed"
    help_request.completed_at = utc_naive()
    help_request.completed_by_user_id = user.id
    help_request.paid_by = "pool" if red else "requester"
    help_request.transaction_id = tx.id if tx else None
    db.session.flush()
    if user.role != "resident":
        record("help_request.complete", user=user, target=f"help_request:{help_request.id}",
               minutes=help_request.minutes, paid_by=help_request.paid_by)
    return help_request


def _cover_from_pool(community_id: int, minutes: int) -> None:
    """Refuse a payment the pool cannot cover, read under the ledger's writer lock. The ledger refuses it
    too (the pool account may not go negative); this also holds a pool opened before that rule, which
    kept its old flag (see migration 0013)."""
    ledger.core.lock_writer(db.session)
    held = ledger.balance(db.session, accounts.pool_minutes(community_id))
    if held < minutes:
        raise Conflict(f"The community pool holds {held} minutes; this help needs {minutes}.",
                       code="insufficient_hours")


#: Who puts minutes into the community pool.
POOL_FUNDERS = ("committee",)


def fund_pool(user: User, community: Community, minutes: int, note: str) -> dict:
    """The committee puts minutes into the community pool (from the community's minutes issuance account):
    the only way, besides residents' gifts and the stored-hours cap's excess, that the pool gets minutes."""
    require_community(user, community.id, *POOL_FUNDERS)
    pool = accounts.pool_minutes(community.id)
    tx = _post(community.id, [ledger.Leg(accounts.issuance_minutes(community.id), -minutes),
                              ledger.Leg(pool, minutes)],
               kind="pool_funding", category="time_bank", memo=f"pool funding: {note}".strip(), actor=user.actor,
               reference=f"community:{community.id}:pool")
    record("hours.pool_fund", user=user, target=f"community:{community.id}", community_id=community.id,
           minutes=minutes, note=note, transaction_id=tx.id)
    return {"community_code": community.code, "minutes": minutes, "note": note, "transaction_id": tx.id,
            "balance": ledger.balance(db.session, pool)}


def transfer(user: User, from_resident_id: int, minutes: int, to_resident_id: int | None = None,
             to_pool: bool = False) -> dict:
    """A gift of minutes to kin in the same household, or to the community pool."""
    giver = _resident(from_resident_id, "from_resident_id")
    _acts_for(user, giver, *HELPING_STAFF)
    community = giver.household.community
    if to_pool == (to_resident_id is not None):
        raise ValidationFailed(errors={"to_resident_id": ["Give either to_resident_id or to_pool: true."]})
    if to_pool:
        legs = [ledger.Leg(accounts.resident_minutes(giver.id), -minutes),
                ledger.Leg(accounts.pool_minutes(community.id), minutes)]
        receiver = None
    else:
        receiver = _resident(to_resident_id, "to_resident_id")
        if receiver.id == giver.id or receiver.household_id != giver.household_id:
            raise ValidationFailed(errors={"to_resident_id": ["Minutes are given to kin in the same household "
                                                              "or to the community pool."]})
        legs = minute_legs(receiver, community, minutes, accounts.resident_minutes(giver.id))
    tx = _post(community.id, legs, kind="gift", category="time_bank",
               memo=f"{giver.name} -> {receiver.name if receiver else 'pool'}", actor=user.actor,
               reference=f"resident:{giver.id}")
    if user.role != "resident":
        record("hours.transfer", user=user, target=f"resident:{giver.id}", minutes=minutes,
               to=f"resident:{receiver.id}" if receiver else "pool")
    to_pool_minutes = sum(leg.amount for leg in legs if leg.account == accounts.pool_minutes(community.id))
    return {"transaction_id": tx.id, "from_resident_id": giver.id,
            "to_resident_id": receiver.id if receiver else None, "to_pool": receiver is None,
            "minutes": minutes, "to_pool_minutes": to_pool_minutes}
