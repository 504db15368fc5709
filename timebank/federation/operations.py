"""Hours between deployments (docs/federation.md): trust, issue, redeem, give back, clearing.

* Each counterparty has one clearing account here, ``federation:<origin>:minutes`` (may go negative):
  issuing moves a resident's minutes into it, redeeming one of the counterparty's vouchers takes
  minutes out of it to a resident, and an expiry or a cancel brings an issued voucher's minutes back.
  Its balance is sent minus received: what this deployment owes the counterparty.
* Vouchers are signed with the deployment's ledger signing key (:mod:`timebank.audit.checkpoints`),
  in the text format of :mod:`timebank.federation.voucher`.
* A voucher is redeemed once: the check is made under the ledger's writer lock, and
  ``redeemed_vouchers`` is unique on (issuer, voucher id).
* The issuer learns what was redeemed from the receiver's signed statements (:func:`statement_for`,
  :func:`take_statement`); an expired voucher's minutes go back only when a statement dated a day after
  its expiry does not list it (:func:`return_expired`).
* Minutes are personal: a resident issues and redeems only for themselves, committee members and grid
  workers of the resident's community for them (audited).

Operations flush and never commit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select

import ledger
import ledger.core
from ledger import checkpoint as notes
from timebank.audit.checkpoints import key_path, signing_key
from timebank.audit.checkpoints import origin as own_origin
from timebank.core import accounts, ledgering
from timebank.core.audit_log import record
from timebank.core.clock import utc_naive
from timebank.core.errors import Conflict, Forbidden, Gone, NotFound, ValidationFailed
from timebank.core.extensions import db
from timebank.core.jobs import JobRun
from timebank.core.policy import require_community, require_role
from timebank.core.users import User
from timebank.federation import voucher as fmt
from timebank.federation.models import IssuedVoucher, RedeemedVoucher, RedemptionStatement, TrustedIssuer
from timebank.hours.operations import minute_legs
from timebank.people.models import Community, Resident

#: Staff who issue and redeem vouchers for a resident of their community.
HELPING_STAFF = ("committee", "grid_worker")
#: Staff who cancel an issued voucher (the minutes go back to the resident).
CANCELLERS = ("committee",)
#: How long a voucher is good for when the request does not say (``TIMEBANK_VOUCHER_DAYS``).
DEFAULT_DAYS = 90
MAX_DAYS = 366
#: An expired voucher's minutes go back this long after its expiry: the receiver refuses it from the
#: expiry on, and the margin covers clocks that disagree and a redemption written at the last moment.
RETURN_AFTER = timedelta(days=1)


def clearing_account(counterparty: str) -> str:
    """The clearing account of one counterparty deployment (minutes; may go negative)."""
    return f"federation:{counterparty}:minutes"


def _open_clearing(counterparty: str) -> str:
    code = clearing_account(counterparty)
    ledger.open_account(db.session, code, accounts.MINUTES, True, now=utc_naive())
    return code


def _my_origin() -> str:
    name = own_origin()
    try:
        return fmt.check_origin(name, "TIMEBANK_ORIGIN")
    except fmt.VoucherFormatError as exc:
        raise Conflict(f"This deployment's origin cannot name vouchers: {exc}.", code="origin_invalid") from exc


# --- trust -----------------------------------------------------------------------------------------

def trust_issuer(user: User, origin: str, public_key: str) -> tuple[TrustedIssuer, bool]:
    """Trust a counterparty's signing key (admin). Returns ``(row, created)``; the same pair again is
    not an error."""
    require_role(user)  # admin only
    try:
        fmt.check_origin(origin)
    except fmt.VoucherFormatError as exc:
        raise ValidationFailed(errors={"origin": [str(exc)]}) from exc
    if origin == own_origin():
        raise ValidationFailed(errors={"origin": ["This is this deployment's own origin."]})
    try:
        raw = base64.b64decode(public_key.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raw = b""
    if len(raw) != 32 or base64.b64encode(raw).decode("ascii") != public_key:
        raise ValidationFailed(errors={"public_key": ["Base64 of the raw 32-byte Ed25519 public key."]})
    row = db.session.execute(select(TrustedIssuer).where(TrustedIssuer.origin == origin,
                                                         TrustedIssuer.public_key == public_key)).scalar_one_or_none()
    if row is not None:
        return row, False
    row = TrustedIssuer(origin=origin, public_key=public_key, key_id=notes.key_id(origin, raw),
                        created_at=utc_naive(), created_by_user_id=user.id)
    db.session.add(row)
    db.session.flush()
    _open_clearing(origin)
    record("federation.trust_issuer", user=user, target=f"federation_issuer:{row.id}", origin=origin,
           key_id=row.key_id)
    return row, True


def trusted_issuers() -> list[TrustedIssuer]:
    return list(db.session.execute(select(TrustedIssuer).order_by(TrustedIssuer.id)).scalars())


def counterparties() -> list[str]:
    """The origins this deployment trusts, in the order they were first trusted."""
    seen: dict[str, None] = {}
    for row in trusted_issuers():
        seen.setdefault(row.origin, None)
    return list(seen)


# --- who acts ------------------------------------------------------------------------------------

def _resident(resident_id: int) -> Resident:
    resident = db.session.get(Resident, resident_id)
    if resident is None:
        raise ValidationFailed(errors={"resident_id": ["No such resident."]})
    if not resident.active:
        raise Conflict("This resident has left; their minutes move no more.", code="resident_inactive")
    return resident


def _acts_for(user: User, resident: Resident) -> None:
    """A resident's minutes are moved by that resident, or by staff of their community for them."""
    if user.role == "resident":
        if user.resident_id != resident.id:
            raise Forbidden("A resident's minutes are moved by that resident, or by staff for them.")
        return
    require_community(user, resident.household.community_id, *HELPING_STAFF)


def _post(community_id: int, legs, **kw):
    try:
        return ledgering.post(community_id, legs, **kw)
    except ledger.InsufficientFunds as exc:
        raise Conflict("Not enough minutes in the time bank.", code="insufficient_hours") from exc


# --- issue ---------------------------------------------------------------------------------------

def _audience(audience: str | None) -> str:
    known = counterparties()
    if audience is None:
        if len(known) != 1:
            raise ValidationFailed(errors={"audience": [
                "Name the deployment where the voucher will be redeemed (its origin)." if known else
                "This deployment trusts no other deployment yet (POST /api/v1/federation/issuers)."]})
        return known[0]
    if audience not in known:
        raise ValidationFailed(errors={"audience": ["Not a deployment this one trusts."]})
    return audience


def issue_voucher(user: User, resident_id: int, minutes: int, audience: str | None = None,
                  expires_in_days: int | None = None) -> IssuedVoucher:
    """Make a signed voucher of ``minutes`` for the resident, to be redeemed at ``audience``: the
    minutes leave the resident for that counterparty's clearing account."""
    resident = _resident(resident_id)
    _acts_for(user, resident)
    if not resident.phone:
        raise ValidationFailed(errors={"resident_id": ["A voucher is made out to a phone number; this "
                                                       "resident has none."]})
    issuer = _my_origin()
    audience = _audience(audience)
    days = expires_in_days or int(current_app.config.get("TIMEBANK_VOUCHER_DAYS") or DEFAULT_DAYS)
    issued = utc_naive().replace(microsecond=0)
    expires = issued + timedelta(days=days)
    voucher_id = secrets.token_hex(16)
    body = fmt.format_body(issuer, audience, voucher_id, fmt.holder_hash(issuer, voucher_id, resident.phone),
                           minutes, issued, expires)
    private, _key = signing_key()
    text = fmt.sign(private, body)
    community_id = resident.household.community_id
    clearing = _open_clearing(audience)
    tx = _post(community_id, [ledger.Leg(accounts.resident_minutes(resident.id), -minutes),
                              ledger.Leg(clearing, minutes)],
               kind="voucher_issue", category="time_bank",
               memo=f"时间券 {voucher_id[:8]}: {resident.name} -> {audience}", actor=user.actor,
               reference=f"voucher:{voucher_id}", idempotency_key=f"voucher:{voucher_id}:issue")
    row = IssuedVoucher(voucher_id=voucher_id, resident_id=resident.id, community_id=community_id,
                        audience=audience, minutes=minutes, issued_at=issued, expires_at=expires, text=text,
                        status="issued", created_by_user_id=user.id, transaction_id=tx.id)
    db.session.add(row)
    db.session.flush()
    if user.role != "resident":
        record("voucher.issue", user=user, target=f"voucher:{voucher_id}", resident_id=resident.id,
               minutes=minutes, audience=audience)
    return row


def visible_voucher(user: User, voucher_id: str) -> IssuedVoucher:
    """An issued voucher, for its resident and the staff of their community (others: 404)."""
    row = db.session.execute(select(IssuedVoucher).where(IssuedVoucher.voucher_id == voucher_id)).scalar_one_or_none()
    if row is None:
        raise NotFound("No such voucher.")
    if user.role == "resident":
        if user.resident_id != row.resident_id:
            raise NotFound("No such voucher.")
    elif user.role != "admin" and user.community_id != row.community_id:
        raise NotFound("No such voucher.")
    return row


def _give_back(row: IssuedVoucher, status: str, actor: str, reason: str | None = None) -> None:
    """The minutes of an unredeemed voucher back to its resident (over the stored-hours cap: to the pool)."""
    resident = db.session.get(Resident, row.resident_id)
    community = db.session.get(Community, row.community_id)
    legs = minute_legs(resident, community, row.minutes, clearing_account(row.audience))
    tx = _post(community.id, legs, kind="voucher_return", category="time_bank",
               memo=f"时间券 {row.voucher_id[:8]} {'过期退回' if status == 'expired' else '作废退回'}: {resident.name}",
               actor=actor, reference=f"voucher:{row.voucher_id}", idempotency_key=f"voucher:{row.voucher_id}:return")
    row.status = status
    row.returned_at = utc_naive()
    row.return_transaction_id = tx.id
    row.return_reason = reason
    db.session.flush()


def _locked(row: IssuedVoucher) -> IssuedVoucher:
    db.session.refresh(row, with_for_update=True)
    return row


def cancel_voucher(user: User, row: IssuedVoucher, reason: str) -> IssuedVoucher:
    """The committee (or an admin) takes back a voucher that was not redeemed: the minutes go back at once
    (a statement listing it later is reported as a discrepancy).
    Nobody cancels a voucher of their own household (403 ``self_dealing``)."""
    require_community(user, row.community_id, *CANCELLERS)
    resident = db.session.get(Resident, row.resident_id)
    if user.household_id is not None and user.household_id == resident.household_id:
        raise Forbidden("Nobody cancels a voucher of their own household.", code="self_dealing")
    ledger.core.lock_writer(db.session)
    _locked(row)
    if row.status != "issued":
        raise Conflict(f"The voucher is {row.status} already.", code="voucher_not_outstanding")
    _give_back(row, "cancelled", user.actor, reason)
    record("voucher.cancel", user=user, target=f"voucher:{row.voucher_id}", minutes=row.minutes, reason=reason)
    return row


def _statement_as_of() -> dict[str, object]:
    """The newest statement's as-of time per counterparty."""
    return dict(db.session.execute(select(RedemptionStatement.origin, func.max(RedemptionStatement.as_of))
                                   .group_by(RedemptionStatement.origin)).all())


def return_expired(moment=None, run: JobRun | None = None) -> list[str]:
    """Give back the minutes of every voucher that expired, is not redeemed, and is proved unredeemed: its
    audience's newest statement is dated at least a day after its expiry (docs/federation.md, "Lost
    vouchers"). Safe to run twice."""
    moment = utc_naive(moment) if moment is not None else utc_naive()
    run = run if run is not None else JobRun("voucher_expiry")
    as_of = _statement_as_of()
    candidates = db.session.execute(select(IssuedVoucher.id, IssuedVoucher.audience, IssuedVoucher.expires_at).where(
        IssuedVoucher.status == "issued", IssuedVoucher.expires_at <= moment - RETURN_AFTER
    ).order_by(IssuedVoucher.id)).all()
    ids = [row_id for row_id, audience, expires in candidates
           if as_of.get(audience) is not None and as_of[audience] >= expires + RETURN_AFTER]
    returned = []
    for row_id in ids:
        due = False
        with run.item(f"voucher:{row_id}") as item:
            ledger.core.lock_writer(db.session)
            row = _locked(db.session.get(IssuedVoucher, row_id))
            due = row.status == "issued"
            if due:
                _give_back(row, "expired", "scheduler")
        if item.done and due:
            returned.append(row.voucher_id)
    return returned


# --- statements: what a receiver redeemed -------------------------------------------------------------

def statement_for(user: User, issuer: str) -> str:
    """This deployment's signed statement, for ``issuer``, of every voucher of theirs redeemed here, as of
    now (admin). Reads only: the signing key is read from its file (404 before ``timebank init-db``)."""
    require_role(user)  # admin only
    if issuer not in counterparties():
        raise NotFound("No such counterparty.")
    path = key_path()
    if not path.exists():
        raise NotFound("No signing key has been set up yet (timebank init-db creates it).")
    rows = db.session.execute(select(RedeemedVoucher.voucher_id, RedeemedVoucher.minutes)
                              .where(RedeemedVoucher.issuer == issuer)).all()
    body = fmt.format_statement(_my_origin(), issuer, utc_naive().replace(microsecond=0),
                                [(r.voucher_id, r.minutes) for r in rows])
    return fmt.sign_statement(notes.load_private_key(path), body)


def take_statement(user: User, text: str) -> dict:
    """Record a counterparty's signed statement (admin): the vouchers it lists become ``redeemed``; the
    answer names any discrepancy (a voucher listed that we gave back, or do not know)."""
    require_role(user)  # admin only
    try:
        statement = fmt.parse_statement(text)
    except fmt.VoucherFormatError as exc:
        raise ValidationFailed(f"Not a valid statement: {exc}.", code="statement_invalid") from exc
    if statement.recipient != own_origin():
        raise ValidationFailed(f"The statement is addressed to {statement.recipient}.", code="statement_invalid")
    keys = [row for row in db.session.execute(select(TrustedIssuer).where(TrustedIssuer.origin == statement.sender))
            .scalars() if fmt.statement_verifies(statement, base64.b64decode(row.public_key))]
    if not keys:
        raise ValidationFailed(f"No trusted key of {statement.sender} signed this statement.",
                               code="statement_untrusted")
    as_of = statement.as_of.replace(tzinfo=None)
    canonical = statement.body()
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    ledger.core.lock_writer(db.session)
    found = db.session.execute(select(RedemptionStatement).where(
        RedemptionStatement.origin == statement.sender, RedemptionStatement.as_of == as_of,
        RedemptionStatement.text_hash == digest)).scalar_one_or_none()
    if found is None:
        found = RedemptionStatement(origin=statement.sender, as_of=as_of, key_id=statement.key_id.hex(),
                                    text_hash=digest, text=text.strip().replace("\r\n", "\n") + "\n",
                                    vouchers=len(statement.redeemed), received_at=utc_naive(),
                                    received_by_user_id=user.id)
        db.session.add(found)
    listed = dict(statement.redeemed)
    rows = {v.voucher_id: v for v in db.session.execute(select(IssuedVoucher).where(
        IssuedVoucher.voucher_id.in_(list(listed)))).scalars()} if listed else {}
    newly, discrepancies = [], []
    for voucher_id, minutes in statement.redeemed:
        row = rows.get(voucher_id)
        if row is None or row.audience != statement.sender:
            discrepancies.append({"voucher_id": voucher_id, "minutes": minutes, "problem": "not issued to them"})
        elif row.minutes != minutes:
            discrepancies.append({"voucher_id": voucher_id, "minutes": minutes, "problem": "other minutes"})
        elif row.status in ("expired", "cancelled"):
            discrepancies.append({"voucher_id": voucher_id, "minutes": minutes,
                                  "problem": f"{row.status} here, minutes given back"})
        elif row.status == "issued":
            row.status = "redeemed"
            row.redeemed_at = as_of
            newly.append(voucher_id)
    db.session.flush()
    record("federation.statement", user=user, target=f"federation_statement:{found.id}", origin=statement.sender,
           as_of=fmt.format_time(as_of), vouchers=len(listed), newly_redeemed=len(newly),
           discrepancies=len(discrepancies))
    return {"origin": statement.sender, "as_of": as_of, "vouchers": len(listed), "newly_redeemed": newly,
            "discrepancies": discrepancies}


# --- redeem --------------------------------------------------------------------------------------

def _invalid(detail: str) -> ValidationFailed:
    return ValidationFailed(f"Not a valid voucher: {detail}.", code="voucher_invalid")


def redeem_voucher(user: User, text: str, resident_id: int) -> RedeemedVoucher:
    """Credit a voucher of a trusted deployment to the resident it is made out to, once."""
    resident = _resident(resident_id)
    _acts_for(user, resident)
    try:
        voucher = fmt.parse(text)
    except fmt.VoucherFormatError as exc:
        raise _invalid(str(exc)) from exc
    if voucher.audience != own_origin():
        raise _invalid(f"it is addressed to {voucher.audience}, not to this deployment")
    keys = [row for row in db.session.execute(select(TrustedIssuer).where(TrustedIssuer.origin == voucher.issuer))
            .scalars() if fmt.key_matches(voucher, base64.b64decode(row.public_key))]
    if not keys:
        raise ValidationFailed(f"{voucher.issuer} (key {voucher.key_id.hex()}) is not a trusted issuer here.",
                               code="voucher_untrusted")
    if not fmt.verify(voucher, base64.b64decode(keys[0].public_key)):
        raise _invalid("the signature does not hold")
    ledger.core.lock_writer(db.session)  # one redeemer at a time: the check below and the insert are one step
    used = db.session.execute(select(RedeemedVoucher.id).where(RedeemedVoucher.issuer == voucher.issuer,
                                                               RedeemedVoucher.voucher_id == voucher.id)).first()
    if used is not None:
        raise Conflict("This voucher was redeemed already.", code="voucher_used")
    now = utc_naive()
    if now >= voucher.expires.replace(tzinfo=None):
        raise Gone(f"This voucher expired at {fmt.format_time(voucher.expires)}.", code="voucher_expired")
    if fmt.holder_hash(voucher.issuer, voucher.id, resident.phone or "") != voucher.holder:
        raise ValidationFailed("This voucher is made out to another person (phone number).",
                               code="voucher_wrong_person")
    community = resident.household.community
    clearing = _open_clearing(voucher.issuer)
    legs = minute_legs(resident, community, voucher.minutes, clearing)
    tx = _post(community.id, legs, kind="voucher_redeem", category="time_bank",
               memo=f"时间券 {voucher.id[:8]} ({voucher.issuer}): {resident.name}", actor=user.actor,
               reference=f"voucher:{voucher.id}", idempotency_key=f"voucher:{voucher.issuer}:{voucher.id}:redeem")
    row = RedeemedVoucher(issuer=voucher.issuer, voucher_id=voucher.id, resident_id=resident.id,
                          community_id=community.id, minutes=voucher.minutes,
                          issued_at=voucher.issued.replace(tzinfo=None),
                          expires_at=voucher.expires.replace(tzinfo=None),
                          key_id=voucher.key_id.hex(), text=fmt.canonical(voucher), redeemed_at=now,
                          redeemed_by_user_id=user.id, transaction_id=tx.id)
    db.session.add(row)
    db.session.flush()
    row.to_pool_minutes = sum(leg.amount for leg in legs if leg.account == accounts.pool_minutes(community.id))
    if user.role != "resident":
        record("voucher.redeem", user=user, target=f"voucher:{voucher.id}", issuer=voucher.issuer,
               resident_id=resident.id, minutes=voucher.minutes)
    return row


# --- clearing ------------------------------------------------------------------------------------

def clearing_report(user: User, origin: str | None = None) -> dict:
    """Per counterparty: minutes sent (issued to it and not given back), received (its vouchers redeemed
    here), net (received - sent), outstanding (sent and not yet expired), and the clearing account's
    balance (sent - received, from the ledger). With ``origin``: that one, with its vouchers."""
    require_role(user)  # admin only: the clearing is the deployment's
    now = utc_naive()
    kept = IssuedVoucher.status.in_(("issued", "redeemed"))
    sent = dict(db.session.execute(select(IssuedVoucher.audience, func.sum(IssuedVoucher.minutes))
                                   .where(kept).group_by(IssuedVoucher.audience)).all())
    sent_n = dict(db.session.execute(select(IssuedVoucher.audience, func.count())
                                     .where(kept).group_by(IssuedVoucher.audience)).all())
    confirmed = dict(db.session.execute(select(IssuedVoucher.audience, func.sum(IssuedVoucher.minutes))
                                        .where(IssuedVoucher.status == "redeemed")
                                        .group_by(IssuedVoucher.audience)).all())
    open_ = dict(db.session.execute(select(IssuedVoucher.audience, func.sum(IssuedVoucher.minutes))
                                    .where(IssuedVoucher.status == "issued", IssuedVoucher.expires_at > now)
                                    .group_by(IssuedVoucher.audience)).all())
    got = dict(db.session.execute(select(RedeemedVoucher.issuer, func.sum(RedeemedVoucher.minutes))
                                  .group_by(RedeemedVoucher.issuer)).all())
    got_n = dict(db.session.execute(select(RedeemedVoucher.issuer, func.count())
                                    .group_by(RedeemedVoucher.issuer)).all())
    origins = list(dict.fromkeys([*counterparties(), *sorted(sent), *sorted(got)]))
    if origin is not None:
        origins = [o for o in origins if o == origin]
        if not origins:
            raise NotFound("No such counterparty.")
    balances = ledger.balances(db.session, [clearing_account(o) for o in origins])
    statements = _statement_as_of()
    items = []
    for o in origins:
        s, r = int(sent.get(o) or 0), int(got.get(o) or 0)
        item = {"origin": o, "sent_minutes": s, "received_minutes": r, "net_minutes": r - s,
                "outstanding_minutes": int(open_.get(o) or 0),
                "confirmed_redeemed_minutes": int(confirmed.get(o) or 0),
                "statement_as_of": statements.get(o), "vouchers_sent": int(sent_n.get(o) or 0),
                "vouchers_received": int(got_n.get(o) or 0), "balance_minutes": balances[clearing_account(o)]}
        if origin is not None:
            item["vouchers"] = _vouchers_with(o)
        items.append(item)
    return {"origin": own_origin(), "items": items}


def _vouchers_with(origin: str) -> list[dict]:
    out = [{"direction": "sent", "voucher_id": v.voucher_id, "minutes": v.minutes, "status": v.status,
            "issued_at": v.issued_at, "expires_at": v.expires_at,
            "at": v.returned_at or v.redeemed_at or v.issued_at}
           for v in db.session.execute(select(IssuedVoucher).where(IssuedVoucher.audience == origin)
                                       .order_by(IssuedVoucher.id)).scalars()]
    out += [{"direction": "received", "voucher_id": v.voucher_id, "minutes": v.minutes, "status": "redeemed",
             "issued_at": v.issued_at, "expires_at": v.expires_at, "at": v.redeemed_at}
            for v in db.session.execute(select(RedeemedVoucher).where(RedeemedVoucher.issuer == origin)
                                        .order_by(RedeemedVoucher.id)).scalars()]
    return out
