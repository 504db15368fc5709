"""Anomalies (异常提示) for the committee: patterns that the DOMAIN's known abuses leave behind.

Each rule names its kind, says why in ``reason`` and gives the ``subjects`` (households, residents,
users) and the ``evidence`` (ids, counts) so a person can check it. A flag is a question for the
committee, not a verdict. Rules and thresholds (docs/reports.md):

* ``reciprocal_help`` — two households help each other: at least :data:`RECIPROCAL_MIN` completed
  help requests each way in the window (claim loops between two households).
* ``claim_burst`` — a household makes at least :data:`BURST_CLAIMS` claims within
  :data:`BURST_MINUTES` minutes.
* ``approver_concentration`` — one approver approved more than :data:`CONCENTRATION_SHARE` of a
  household's at least :data:`CONCENTRATION_MIN` approved claims, while the community had at least
  two approvers in the window (with one reviewer there is nothing to compare).
* ``clerk_volume`` — a clerk's redeemed points are at least :data:`CLERK_VOLUME_FACTOR` times the
  median of the community's other clerks, with at least :data:`CLERK_MIN_RECEIPTS` receipts.
* ``clerk_voids`` — a clerk voided at least :data:`VOIDS_MIN` receipts, and at least
  :data:`VOIDS_SHARE` of the receipts they served.
* ``shared_device`` — at least :data:`DEVICE_MIN_RESIDENTS` residents checked in from the same
  address *and* device (User-Agent): one phone checking others in.
* ``shared_address`` — at least :data:`ADDRESS_MIN_RESIDENTS` residents checked in from one address
  for at least :data:`ADDRESS_MIN_TASKS` different tasks (one site's wifi at one task is normal).

Back-office patterns (the staff's own abuses):

* ``fresh_rule`` — a rule's claims made on the (local) day the rule was created add up to at least
  :data:`FRESH_RULE_POINTS` points: a rule made to pay somebody at once.
* ``entry_concentration`` — one staff member entered (代录) at least :data:`ENTRY_MIN` claims and at
  least :data:`ENTRY_SHARE` of all the community's claims in the window.
* ``pool_concentration`` — the community pool paid at least :data:`POOL_MIN_PAYOUTS` helps in the
  window and the :data:`POOL_TOP` volunteer households paid most received at least :data:`POOL_SHARE`
  of its minutes, while more than :data:`POOL_TOP` households volunteered in the window (with so few
  volunteers there is nothing to compare).
* ``refused_self_dealing`` — one login was refused at least :data:`REFUSED_MIN` times by the insider
  rules (``self_approval``, ``self_dealing``, ``same_signer``, ``person_required``) in the window, as
  recorded in ``refusals`` (:mod:`timebank.core.refusals`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from statistics import median

from sqlalchemy import func, select

from timebank.core.audit_log import AuditEntry
from timebank.core.clock import to_local
from timebank.core.extensions import db
from timebank.core.refusals import Refusal
from timebank.core.users import User
from timebank.earning.models import CheckIn, Claim, ClaimEvent, Rule, Task
from timebank.hours.models import HelpRequest
from timebank.people.models import Community, Household, Resident
from timebank.shop.models import Redemption

RECIPROCAL_MIN = 2
BURST_CLAIMS = 5
BURST_MINUTES = 60
CONCENTRATION_MIN = 5
CONCENTRATION_SHARE = 0.8
CLERK_VOLUME_FACTOR = 3
CLERK_MIN_RECEIPTS = 5
VOIDS_MIN = 3
VOIDS_SHARE = 0.2
DEVICE_MIN_RESIDENTS = 3
ADDRESS_MIN_RESIDENTS = 5
ADDRESS_MIN_TASKS = 2
FRESH_RULE_POINTS = 100
ENTRY_MIN = 10
ENTRY_SHARE = 0.5
POOL_MIN_PAYOUTS = 10
POOL_TOP = 3
POOL_SHARE = 0.8
REFUSED_MIN = 3

KINDS = ("reciprocal_help", "claim_burst", "approver_concentration", "clerk_volume", "clerk_voids",
         "shared_device", "shared_address", "fresh_rule", "entry_concentration", "pool_concentration",
         "refused_self_dealing")


def _households(ids) -> dict[int, Household]:
    ids = set(ids)
    if not ids:
        return {}
    return {h.id: h for h in db.session.execute(select(Household).where(Household.id.in_(ids))).scalars()}


def _household_subject(h: Household) -> dict:
    return {"type": "household", "id": h.id, "name": h.name}


def _user_subject(u: User) -> dict:
    return {"type": "user", "id": u.id, "name": u.username, "role": u.role}


def _iso(moment: datetime) -> str:
    return to_local(moment).isoformat()


def reciprocal_help(community_id: int, start: datetime, end: datetime) -> list[dict]:
    requester = Resident.__table__.alias("req")
    volunteer = Resident.__table__.alias("vol")
    rows = db.session.execute(
        select(HelpRequest.id, HelpRequest.minutes, requester.c.household_id, volunteer.c.household_id)
        .join(requester, requester.c.id == HelpRequest.requester_id)
        .join(volunteer, volunteer.c.id == HelpRequest.volunteer_id)
        .where(HelpRequest.community_id == community_id, HelpRequest.status == "completed",
               HelpRequest.completed_at >= start, HelpRequest.completed_at < end)
        .order_by(HelpRequest.id)
    ).all()
    # (helper household, helped household) -> help request ids and minutes
    flows: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for request_id, minutes, helped, helper in rows:
        if helped != helper:
            flows[(helper, helped)].append((request_id, minutes))
    out = []
    homes = _households({h for pair in flows for h in pair})
    for (a, b), a_helps_b in sorted(flows.items()):
        if a > b:
            continue
        b_helps_a = flows.get((b, a), [])
        if len(a_helps_b) >= RECIPROCAL_MIN and len(b_helps_a) >= RECIPROCAL_MIN:
            out.append({
                "kind": "reciprocal_help",
                "reason": f"Households {homes[a].name} and {homes[b].name} helped each other "
                          f"{len(a_helps_b)} and {len(b_helps_a)} times in the window "
                          f"(flag at {RECIPROCAL_MIN} or more each way).",
                "subjects": [_household_subject(homes[a]), _household_subject(homes[b])],
                "evidence": {
                    "a_helped_b": [i for i, _ in a_helps_b], "b_helped_a": [i for i, _ in b_helps_a],
                    "a_to_b_minutes": sum(m for _, m in a_helps_b), "b_to_a_minutes": sum(m for _, m in b_helps_a),
                },
            })
    return out


def claim_bursts(community_id: int, start: datetime, end: datetime) -> list[dict]:
    rows = db.session.execute(
        select(Claim.id, Claim.household_id, Claim.resident_id, Claim.created_at)
        .where(Claim.community_id == community_id, Claim.created_at >= start, Claim.created_at < end)
        .order_by(Claim.household_id, Claim.created_at, Claim.id)
    ).all()
    by_household: dict[int, list] = defaultdict(list)
    for row in rows:
        by_household[row.household_id].append(row)
    window = timedelta(minutes=BURST_MINUTES)
    out = []
    homes = _households(by_household)
    for household_id, claims in sorted(by_household.items()):
        best = None
        first = 0
        for last in range(len(claims)):
            while claims[last].created_at - claims[first].created_at > window:
                first += 1
            count = last - first + 1
            if count >= BURST_CLAIMS and (best is None or count > best[1] - best[0] + 1):
                best = (first, last)
        if best is None:
            continue
        burst = claims[best[0]:best[1] + 1]
        out.append({
            "kind": "claim_burst",
            "reason": f"Household {homes[household_id].name} made {len(burst)} claims within "
                      f"{BURST_MINUTES} minutes (flag at {BURST_CLAIMS}).",
            "subjects": [_household_subject(homes[household_id])]
            + [{"type": "resident", "id": rid} for rid in sorted({c.resident_id for c in burst})],
            "evidence": {"claim_ids": [c.id for c in burst], "count": len(burst),
                         "first_at": _iso(burst[0].created_at), "last_at": _iso(burst[-1].created_at)},
        })
    return out


def approver_concentration(community_id: int, start: datetime, end: datetime) -> list[dict]:
    rows = db.session.execute(
        select(ClaimEvent.user_id, Claim.household_id, ClaimEvent.claim_id)
        .join(Claim, Claim.id == ClaimEvent.claim_id)
        .where(Claim.community_id == community_id, ClaimEvent.action == "approve", ClaimEvent.user_id.isnot(None),
               ClaimEvent.created_at >= start, ClaimEvent.created_at < end)
        .order_by(ClaimEvent.id)
    ).all()
    if len({r.user_id for r in rows}) < 2:
        return []
    by_household: dict[int, list] = defaultdict(list)
    for row in rows:
        by_household[row.household_id].append(row)
    homes = _households(by_household)
    out = []
    for household_id, approvals in sorted(by_household.items()):
        if len(approvals) < CONCENTRATION_MIN:
            continue
        approver_id, count = Counter(r.user_id for r in approvals).most_common(1)[0]
        share = count / len(approvals)
        if share > CONCENTRATION_SHARE:
            approver = db.session.get(User, approver_id)
            out.append({
                "kind": "approver_concentration",
                "reason": f"{approver.username} approved {count} of the {len(approvals)} claims of household "
                          f"{homes[household_id].name} ({share:.0%}; flag above {CONCENTRATION_SHARE:.0%} "
                          f"of at least {CONCENTRATION_MIN}).",
                "subjects": [_household_subject(homes[household_id]), _user_subject(approver)],
                "evidence": {"approvals": len(approvals), "by_this_approver": count, "share": round(share, 4),
                             "claim_ids": [r.claim_id for r in approvals if r.user_id == approver_id]},
            })
    return out


def clerk_activity(community_id: int, start: datetime, end: datetime) -> list[dict]:
    served = db.session.execute(
        select(Redemption.clerk_id, func.count(), func.coalesce(func.sum(Redemption.total_points), 0))
        .where(Redemption.community_id == community_id, Redemption.clerk_id.isnot(None),
               Redemption.created_at >= start, Redemption.created_at < end)
        .group_by(Redemption.clerk_id)
    ).all()
    receipts = {clerk: int(n) for clerk, n, _ in served}
    points = {clerk: int(p) for clerk, _, p in served}
    voids = dict(db.session.execute(
        select(AuditEntry.user_id, func.count())
        .where(AuditEntry.community_id == community_id, AuditEntry.action == "redemption.void",
               AuditEntry.user_id.isnot(None), AuditEntry.created_at >= start, AuditEntry.created_at < end)
        .group_by(AuditEntry.user_id)
    ).all())
    out = []
    for clerk_id in sorted(receipts):
        others = [points[c] for c in receipts if c != clerk_id]
        if not others or receipts[clerk_id] < CLERK_MIN_RECEIPTS:
            continue
        middle = median(others)
        if points[clerk_id] >= CLERK_VOLUME_FACTOR * middle:
            clerk = db.session.get(User, clerk_id)
            out.append({
                "kind": "clerk_volume",
                "reason": f"{clerk.username} redeemed {points[clerk_id]} points on {receipts[clerk_id]} receipts, "
                          f"{CLERK_VOLUME_FACTOR} or more times the median of the other clerks ({middle:g}).",
                "subjects": [_user_subject(clerk)],
                "evidence": {"points": points[clerk_id], "receipts": receipts[clerk_id],
                             "median_of_other_clerks": middle, "other_clerks": len(others)},
            })
    for clerk_id, count in sorted(voids.items()):
        count = int(count)
        base = max(receipts.get(clerk_id, 0), count)
        if count >= VOIDS_MIN and count / base >= VOIDS_SHARE:
            clerk = db.session.get(User, clerk_id)
            out.append({
                "kind": "clerk_voids",
                "reason": f"{clerk.username} voided {count} receipts against {receipts.get(clerk_id, 0)} served "
                          f"(flag at {VOIDS_MIN} voids and {VOIDS_SHARE:.0%} of receipts).",
                "subjects": [_user_subject(clerk)],
                "evidence": {"voids": count, "receipts_served": receipts.get(clerk_id, 0)},
            })
    return out


def shared_sources(community_id: int, start: datetime, end: datetime) -> list[dict]:
    rows = db.session.execute(
        select(CheckIn.id, CheckIn.resident_id, CheckIn.task_id, CheckIn.address, CheckIn.device)
        .join(Task, Task.id == CheckIn.task_id)
        .where(Task.community_id == community_id, CheckIn.created_at >= start, CheckIn.created_at < end,
               CheckIn.address.isnot(None))
        .order_by(CheckIn.id)
    ).all()
    by_device: dict[tuple, list] = defaultdict(list)
    by_address: dict[str, list] = defaultdict(list)
    for row in rows:
        by_address[row.address].append(row)
        if row.device:
            by_device[(row.address, row.device)].append(row)
    out = []
    for (address, device), hits in sorted(by_device.items()):
        residents = sorted({r.resident_id for r in hits})
        if len(residents) >= DEVICE_MIN_RESIDENTS:
            out.append({
                "kind": "shared_device",
                "reason": f"{len(residents)} residents checked in from one device at {address} "
                          f"(flag at {DEVICE_MIN_RESIDENTS}).",
                "subjects": [{"type": "resident", "id": rid} for rid in residents],
                "evidence": {"address": address, "device": device, "checkin_ids": [r.id for r in hits],
                             "tasks": sorted({r.task_id for r in hits})},
            })
    for address, hits in sorted(by_address.items()):
        residents = sorted({r.resident_id for r in hits})
        tasks = sorted({r.task_id for r in hits})
        if len(residents) >= ADDRESS_MIN_RESIDENTS and len(tasks) >= ADDRESS_MIN_TASKS:
            out.append({
                "kind": "shared_address",
                "reason": f"{len(residents)} residents checked in from the address {address} for {len(tasks)} "
                          f"tasks (flag at {ADDRESS_MIN_RESIDENTS} residents and {ADDRESS_MIN_TASKS} tasks).",
                "subjects": [{"type": "resident", "id": rid} for rid in residents],
                "evidence": {"address": address, "checkin_ids": [r.id for r in hits], "tasks": tasks,
                             "devices": len({r.device for r in hits})},
            })
    return out


def fresh_rules(community_id: int, start: datetime, end: datetime) -> list[dict]:
    rows = db.session.execute(
        select(Claim.id, Claim.rule_id, Claim.household_id, Claim.points, Claim.created_at, Rule.code,
               Rule.created_at.label("rule_created_at"))
        .join(Rule, Rule.id == Claim.rule_id)
        .where(Claim.community_id == community_id, Claim.status != "rejected",
               Claim.created_at >= start, Claim.created_at < end, Rule.created_at >= start - timedelta(days=1))
        .order_by(Claim.id)
    ).all()
    same_day: dict[int, list] = defaultdict(list)
    for row in rows:
        if to_local(row.created_at).date() == to_local(row.rule_created_at).date():
            same_day[row.rule_id].append(row)
    out = []
    for rule_id, claims in sorted(same_day.items()):
        total = sum(int(c.points) for c in claims)
        if total < FRESH_RULE_POINTS:
            continue
        creator = db.session.scalar(
            select(User).join(AuditEntry, AuditEntry.user_id == User.id)
            .where(AuditEntry.action == "rule.create", AuditEntry.target == f"rule:{rule_id}"))
        homes = _households(c.household_id for c in claims)
        out.append({
            "kind": "fresh_rule",
            "reason": f"The rule {claims[0].code} paid {total} points in {len(claims)} claims on the day it was "
                      f"created (flag at {FRESH_RULE_POINTS}).",
            "subjects": ([_user_subject(creator)] if creator is not None else [])
            + [_household_subject(homes[h]) for h in sorted(homes)],
            "evidence": {"rule_id": rule_id, "rule_code": claims[0].code, "points": total,
                         "claim_ids": [c.id for c in claims], "rule_created_at": _iso(claims[0].rule_created_at)},
        })
    return out


def entry_concentration(community_id: int, start: datetime, end: datetime) -> list[dict]:
    rows = db.session.execute(
        select(Claim.id, Claim.entered_by_user_id, Claim.entered_for_resident)
        .where(Claim.community_id == community_id, Claim.created_at >= start, Claim.created_at < end)
        .order_by(Claim.id)
    ).all()
    entered = Counter(r.entered_by_user_id for r in rows if r.entered_for_resident and r.entered_by_user_id)
    out = []
    for user_id, count in sorted(entered.items()):
        share = count / len(rows)
        if count >= ENTRY_MIN and share >= ENTRY_SHARE:
            staff = db.session.get(User, user_id)
            out.append({
                "kind": "entry_concentration",
                "reason": f"{staff.username} entered {count} of the {len(rows)} claims for residents ({share:.0%}; "
                          f"flag at {ENTRY_MIN} claims and {ENTRY_SHARE:.0%}).",
                "subjects": [_user_subject(staff)],
                "evidence": {"entered": count, "claims": len(rows), "share": round(share, 4),
                             "claim_ids": [r.id for r in rows if r.entered_by_user_id == user_id
                                           and r.entered_for_resident]},
            })
    return out


def pool_concentration(community_id: int, start: datetime, end: datetime) -> list[dict]:
    volunteer = Resident.__table__.alias("vol")
    rows = db.session.execute(
        select(HelpRequest.id, HelpRequest.minutes, HelpRequest.paid_by, HelpRequest.completed_by_user_id,
               volunteer.c.household_id)
        .join(volunteer, volunteer.c.id == HelpRequest.volunteer_id)
        .where(HelpRequest.community_id == community_id, HelpRequest.status == "completed",
               HelpRequest.completed_at >= start, HelpRequest.completed_at < end)
        .order_by(HelpRequest.id)
    ).all()
    paid = [r for r in rows if r.paid_by == "pool"]
    volunteering = {r.household_id for r in rows}
    if len(paid) < POOL_MIN_PAYOUTS or len(volunteering) <= POOL_TOP:
        return []
    by_household: dict[int, int] = defaultdict(int)
    for row in paid:
        by_household[row.household_id] += int(row.minutes)
    total = sum(by_household.values())
    top = sorted(by_household.items(), key=lambda item: (-item[1], item[0]))[:POOL_TOP]
    share = sum(minutes for _, minutes in top) / total
    if share < POOL_SHARE:
        return []
    homes = _households(h for h, _ in top)
    names = "、".join(homes[h].name for h, _ in top)
    confirmers = Counter(r.completed_by_user_id for r in paid if r.completed_by_user_id)
    return [{
        "kind": "pool_concentration",
        "reason": f"The community pool paid {len(paid)} helps ({total} minutes) in the window; {share:.0%} of "
                  f"its minutes went to the {len(top)} households {names} (flag at {POOL_MIN_PAYOUTS} payouts "
                  f"and {POOL_SHARE:.0%} to the top {POOL_TOP}, with more than {POOL_TOP} households volunteering).",
        "subjects": [_household_subject(homes[h]) for h, _ in top],
        "evidence": {
            "payouts": len(paid), "pool_minutes": total, "share": round(share, 4),
            "minutes_by_household": {str(h): minutes for h, minutes in top},
            "households_volunteering": len(volunteering),
            "help_request_ids": [r.id for r in paid if r.household_id in homes],
            "confirmed_by_user_ids": {str(u): n for u, n in sorted(confirmers.items())},
        },
    }]


def refused_self_dealing(community_id: int, start: datetime, end: datetime) -> list[dict]:
    rows = db.session.execute(
        select(Refusal.id, Refusal.user_id, Refusal.code, Refusal.path, Refusal.created_at)
        .where(Refusal.community_id == community_id, Refusal.user_id.isnot(None),
               Refusal.created_at >= start, Refusal.created_at < end)
        .order_by(Refusal.id)
    ).all()
    by_user: dict[int, list] = defaultdict(list)
    for row in rows:
        by_user[row.user_id].append(row)
    out = []
    for user_id, refused in sorted(by_user.items()):
        if len(refused) < REFUSED_MIN:
            continue
        who = db.session.get(User, user_id)
        codes = Counter(r.code for r in refused)
        out.append({
            "kind": "refused_self_dealing",
            "reason": f"{who.username} was refused {len(refused)} times by the insider rules in the window ("
                      + ", ".join(f"{code} {n}" for code, n in sorted(codes.items()))
                      + f"; flag at {REFUSED_MIN}).",
            "subjects": [_user_subject(who)],
            "evidence": {"refusals": len(refused), "codes": dict(sorted(codes.items())),
                         "refusal_ids": [r.id for r in refused], "paths": sorted({r.path for r in refused}),
                         "first_at": _iso(refused[0].created_at), "last_at": _iso(refused[-1].created_at)},
        })
    return out


def find_anomalies(community: Community, start: datetime, end: datetime) -> list[dict]:
    """Every anomaly of the community in ``[start, end)`` (naive UTC), in the order of :data:`KINDS`."""
    items = []
    for rule in (reciprocal_help, claim_bursts, approver_concentration, clerk_activity, shared_sources,
                 fresh_rules, entry_concentration, pool_concentration, refused_self_dealing):
        items.extend(rule(community.id, start, end))
    order = {k: i for i, k in enumerate(KINDS)}
    items.sort(key=lambda a: order[a["kind"]])
    # Residents' names for the committee (it sees them anyway); the public board never shows this.
    ids = {s["id"] for a in items for s in a["subjects"] if s["type"] == "resident"}
    if ids:
        names = {r.id: r.name for r in db.session.execute(select(Resident).where(Resident.id.in_(ids))).scalars()}
        for a in items:
            for s in a["subjects"]:
                if s["type"] == "resident":
                    s["name"] = names.get(s["id"])
    return items
