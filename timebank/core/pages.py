"""Shared pieces of every feature's pages: who may open a page, one-time forms, refusals, labels and formatting.

Pages ask the same access rules as the API (:mod:`timebank.core.policy` and the operations' own checks);
these helpers only turn "not logged in" into a trip to the login page and a refusal into a page.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from functools import wraps
from urllib.parse import urlsplit

import segno
from flask import abort, after_this_request, flash, g, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from timebank.core.clock import to_local, utc_naive
from timebank.core.errors import DomainError, ValidationFailed
from timebank.core.extensions import db
from timebank.core.idempotency import IdempotencyRecord

# --- who may open a page ---------------------------------------------------------------------------


def login_redirect():
    target = request.full_path if request.query_string else request.path
    return redirect(url_for("web_auth.login", next=target))


def login_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            return login_redirect()
        return view(*args, **kwargs)

    return wrapper


def resident_required(view):
    """A resident's own pages: the login must be a resident's, linked to a resident."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            return login_redirect()
        if current_user.role != "resident" or current_user.resident is None:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def roles_required(*roles: str):
    """Staff pages: one of ``roles`` (admin always). The community check is the page's, via policy."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_redirect()
            if current_user.role != "admin" and current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def safe_next(target: str | None, default: str) -> str:
    """Only a path on this site: never another host (open redirect)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return default
    return target


# --- forms that must take effect once ---------------------------------------------------------------
#
# Every page form that creates or moves something carries a hidden ``form_key`` made when the page is
# rendered (``new_form_key()`` in the template). Its view calls ``take_form_key()`` before any work and
# ends with ``form_done()``, which keeps the outcome (where it is shown, what was said) in the key's row,
# in the same transaction as the work. A form sent again (a double tap, a reload after an error page,
# the till's retry after a 503 whose commit had in fact gone through) finds the key taken and is
# answered by ``replay_form()``: "already sent", and the first sending's outcome. So nothing is done
# twice, and the person learns what was done.

_FORM_RECORD = "timebank_form_record"


def new_form_key() -> str:
    """Put in a hidden ``form_key`` field of every form that creates or moves something."""
    return secrets.token_urlsafe(16)


def _form_key() -> str:
    key = (request.form.get("form_key") or "").strip()
    if not 8 <= len(key) <= 64:
        abort(400)
    return key


def _form_scope() -> str:
    return f"web:user:{current_user.id}"


def take_form_key() -> bool:
    """Record this form's key in the current transaction; False when it was already used.

    A double tap on a slow phone sends the form twice; the unique (scope, key) row makes the second
    one fail, so minutes move once. Call it first in the transaction, before the work. A form without
    a key is refused (400).
    """
    key = _form_key()
    record = IdempotencyRecord(
        scope=_form_scope(), key=key,
        request_hash=hashlib.sha256(f"POST {request.path}".encode()).hexdigest(),
        status_code=303, response_body="", created_at=utc_naive())
    db.session.add(record)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return False
    setattr(g, _FORM_RECORD, record)
    return True


def remember_outcome(**outcome) -> None:
    """Keep what this form did with its key (same transaction), for ``sent_before()``."""
    record = g.get(_FORM_RECORD)
    if record is not None:
        record.response_body = json.dumps(outcome, ensure_ascii=False)


def say_when_committed(message, category: str = "success") -> None:
    """Flash ``message`` only if the request's commit succeeds: a 503 must not leave a word of
    success behind for the next page."""
    text = str(message)

    @after_this_request
    def _say(response):
        if response.status_code < 400:
            flash(text, category)
        return response


def form_done(location: str, message=None, category: str = "success", **outcome):
    """The end of a form's work: say ``message`` (once committed), keep the outcome with the form's
    key, and go to ``location``."""
    if message is not None:
        say_when_committed(message, category)
        message = str(message)
    remember_outcome(location=location, message=message, category=category, **outcome)
    return redirect(location)


def sent_before() -> dict:
    """What the first sending of this form did (``form_done``'s outcome); {} when not known."""
    return form_outcome(_form_key()) or {}


def form_outcome(key: str) -> dict | None:
    """What the form sent with ``key`` by this user did; None when no form was sent with it (a page
    that carries its form's key in its address, as the till's basket does, asks this on GET)."""
    record = db.session.execute(select(IdempotencyRecord).where(
        IdempotencyRecord.scope == _form_scope(), IdempotencyRecord.key == key)).scalar_one_or_none()
    if record is None:
        return None
    if not record.response_body:
        return {}
    try:
        outcome = json.loads(record.response_body)
    except ValueError:
        return {}
    return outcome if isinstance(outcome, dict) else {}


def already_sent():
    flash(_l("This form was already sent; nothing was done twice."), "info")


def replay_form(default: str):
    """The form's key was already used: say so plainly and show what the first sending did."""
    outcome = sent_before()
    already_sent()
    if outcome.get("message"):
        flash(outcome["message"], outcome.get("category") or "success")
    return redirect(safe_next(outcome.get("location"), default))


# --- refusals in plain words ---------------------------------------------------------------------

def domain_message(exc: DomainError) -> str:
    """The refusal in plain words; the codes named by the contract have a translation."""
    messages = {
        "insufficient_hours": _("there are not enough minutes in the time bank."),
        "cap_exceeded": _("your household has reached the limit for this item in this period."),
        "rule_inactive": _("this item of the points list is not in force."),
        "help_request_not_open": _("somebody else is already helping."),
        "help_request_not_accepted": _("nobody has accepted this request yet."),
        "self_dealing": _("the helper may not be of the same household as the person who asks for help."),
        "token_expired": _("the check-in code has expired. Scan the code on the screen again."),
        "token_invalid": _("this is not a valid check-in code."),
        "task_full": _("all places of this task are taken."),
        "task_closed": _("the task is not open for check-in now."),
        "team_does_not_fit": _("the team needs more places than are left; nobody was checked in."),
        "team_member": _("you are in a team for this task: your team's leader checks the whole team in."),
        "not_team_leader": _("only the team's leader checks the team in."),
        "already_in_team": _("this resident is already in a team for this task."),
        "already_checked_in": _("this resident has already checked in for this task."),
        "team_exists": _("this household already has a team for this task: join it."),
        "other_household": _("a household team is of its own household's members only."),
        "team_has_members": _("the leader leaves last: the other members leave first."),
        "not_in_team": _("this resident is not in this team."),
        "forbidden": _("you may not do this."),
        "validation_error": _("some of the entries are not valid."),
    }
    return messages.get(exc.code, exc.detail or exc.code)


# --- page forms bounded as the API ---------------------------------------------------------------

_WHOLE = re.compile(r"[+-]?[0-9]+")


def form_number(value: str | None):
    """A form's text as the API would see it in JSON: digits become an int, anything else stays text
    (which an Integer field refuses: "1e3" is not a whole number). Empty is None."""
    value = (value or "").strip()
    if not value:
        return None
    return int(value) if _WHOLE.fullmatch(value) and len(value) <= 40 else value


def check_form(schema, data: dict) -> None:
    """Bound a page form exactly as the API does: validate ``data`` (the fields the form sent, as
    :func:`form_number` reads them) against the API's own marshmallow ``schema``, leaving out fields
    the form did not send; refuse (422 ``validation_error``) with the bounds in words."""
    from marshmallow import fields, validate

    errors = schema.validate({k: v for k, v in data.items() if v is not None}, partial=True)
    if not errors:
        return
    words: dict[str, list[str]] = {}
    for name, problems in errors.items():
        field = schema.fields.get(name)
        bounds = next((v for v in getattr(field, "validators", ()) if isinstance(v, validate.Range)), None)
        if isinstance(field, fields.Integer) and bounds is not None:
            words[name] = [_("must be a whole number from %(low)s to %(high)s", low=bounds.min, high=bounds.max)]
        else:
            words[name] = [str(p) for p in (problems if isinstance(problems, list) else [problems])]
    raise ValidationFailed(errors=words)


# --- labels in plain words -------------------------------------------------------------------------

CATEGORY_LABELS = {
    "volunteer": _l("Volunteer service"),
    "red": _l("Red points (party building)"),
    "moral": _l("Good conduct"),
    "neighbour_help": _l("Neighbour help"),
    "time_bank": _l("Time bank"),
    "shop": _l("Love supermarket"),
    "deduction": _l("Deductions"),
}

KIND_LABELS = {
    "claim": _l("Points earned"),
    "grant": _l("Points given"),
    "redemption": _l("Goods taken at the supermarket"),
    "void": _l("Supermarket sale cancelled, points back"),
    "return": _l("Goods returned, points back"),
    "expiry": _l("Points expired"),
    "help": _l("Neighbour help paid in time"),
    "gift": _l("Time given"),
    "pool_funding": _l("Time put into the community pool"),
    "reversal": _l("Correction"),
    "claim_reversal": _l("Points taken back"),
    "opening_balance": _l("Opening balance (carried over)"),
    "voucher_issue": _l("Time sent to another time bank (voucher)"),
    "voucher_redeem": _l("Time received from another time bank (voucher)"),
    "voucher_return": _l("Unused voucher, time back"),
    "honour": _l("Honour awarded"),
    "deduction": _l("Points deducted"),
}

CLAIM_STATUS_LABELS = {
    "pending": _l("Waiting for review"),
    "publicized": _l("On the notice board"),
    "posted": _l("Points credited"),
    "rejected": _l("Not approved"),
    "reversed": _l("Taken back"),
}

HONOUR_STATUS_LABELS = {
    "pending": _l("Nominated, waiting for the committee"),
    "publicized": _l("On the notice board"),
    "held": _l("Held"),
    "under_review": _l("Under half-yearly review"),
    "withdrawn": _l("Withdrawn"),
    "rejected": _l("Not approved"),
    "ended": _l("Term ended"),
}

HELP_STATUS_LABELS = {
    "open": _l("Looking for a helper"),
    "accepted": _l("A helper is coming"),
    "completed": _l("Done, time paid"),
    "cancelled": _l("Cancelled"),
}


UNIT_LABELS = {"points": _l("points"), "minutes": _l("min")}

#: A cap's period as the words "at most 50 points a %(period)s" take it (每户每年最多 50 积分).
PERIOD_WORDS = {"day": _l("day"), "week": _l("week"), "month": _l("month"), "year": _l("year")}

_PARTNER = re.compile(r"partner:(\d+):points")
_ACCOUNT = re.compile(r"(household|resident):(\d+):(points|minutes)|community:\d+:(.+)")


def account_words(code: str, names: dict | None = None) -> str:
    """A ledger account in words: ``household:7:points`` -> 张家 的积分, ``community:1:issuance:red`` ->
    发放：红色积分. ``names`` maps ``("household"|"resident"|"partner", id)`` to a name. An account this does not
    know keeps its code (then a test of the pages in Chinese names it)."""
    m = _ACCOUNT.fullmatch(code or "")
    if m is None:
        origin, sep, unit = (code or "").removeprefix("federation:").rpartition(":")
        if code.startswith("federation:") and sep and unit == "minutes":
            return _("Hours exchanged with %(origin)s", origin=origin)
        return code
    if m.group(1):
        owner, number = m.group(1), int(m.group(2))
        name = (names or {}).get((owner, number)) or f"#{number}"
        if owner == "household":
            return _("%(name)s's points", name=name)
        return _("%(name)s's time", name=name)
    rest = m.group(4)
    partner = _PARTNER.fullmatch(rest)
    if partner is not None:
        number = int(partner.group(1))
        name = (names or {}).get(("partner", number)) or f"#{number}"
        return _("Points redeemed at partner shop %(name)s", name=name)
    words = {
        "issuance:minutes": _("Time given out by the community"),
        "issuance:opening": _("Opening balances carried over"),
        "pool:minutes": _("The community's time pool"),
        "expired:points": _("Expired points"),
        "supermarket:points": _("Points spent at the love supermarket"),
        "deducted:points": _("Points taken by deductions"),
    }
    if rest in words:
        return words[rest]
    if rest.startswith("issuance:") and rest[len("issuance:"):] in CATEGORY_LABELS:
        return _("Given out: %(category)s", category=CATEGORY_LABELS[rest[len("issuance:"):]])
    return code


def label(table: dict, key: str | None) -> str:
    if key is None:
        return ""
    return str(table.get(key, key))


def local_time(moment, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return to_local(moment).strftime(fmt) if moment else ""


def local_date(moment) -> str:
    return to_local(moment).strftime("%Y-%m-%d") if moment else ""


def hours_text(minutes: int | None) -> str:
    """Minutes as hours and minutes in words: 90 -> 1 小时 30 分钟."""
    minutes = int(minutes or 0)
    sign = "-" if minutes < 0 else ""
    hours, rest = divmod(abs(minutes), 60)
    if hours and rest:
        return sign + _("%(h)d h %(m)d min", h=hours, m=rest)
    if hours:
        return sign + _("%(h)d h", h=hours)
    return sign + _("%(m)d min", m=rest)


_TECHNICAL = re.compile(r"\s*\((?:resident|household|user|claim|item):\d+[^)]*\)")


_USER_ACTOR = re.compile(r"user:\d+:(.+)")


def actor_name(actor: str | None) -> str:
    """Who did it, as a person reads it: ``user:3:clerk`` -> clerk (the login's name), ``system`` ->
    自动 (the scheduler's jobs)."""
    if actor == "system":
        return _("automatic")
    m = _USER_ACTOR.fullmatch(actor or "")
    return m.group(1) if m else (actor or "")


def plain_memo(memo: str | None) -> str:
    """A ledger memo without the ids meant for auditors: "清扫 · 张三 (resident:8)" -> "清扫 · 张三"."""
    return _TECHNICAL.sub("", memo or "").strip()


def register_filters(app) -> None:
    app.jinja_env.filters.setdefault("actor_name", actor_name)
    app.jinja_env.filters.setdefault("plain_memo", plain_memo)
    app.jinja_env.filters.setdefault("local_time", local_time)
    app.jinja_env.filters.setdefault("local_date", local_date)
    app.jinja_env.filters.setdefault("hours", hours_text)
    app.jinja_env.globals.setdefault("CATEGORY_LABELS", CATEGORY_LABELS)
    app.jinja_env.globals.setdefault("KIND_LABELS", KIND_LABELS)
    app.jinja_env.globals.setdefault("CLAIM_STATUS_LABELS", CLAIM_STATUS_LABELS)
    app.jinja_env.globals.setdefault("HELP_STATUS_LABELS", HELP_STATUS_LABELS)
    app.jinja_env.globals.setdefault("HONOUR_STATUS_LABELS", HONOUR_STATUS_LABELS)
    app.jinja_env.globals.setdefault("label", label)
    app.jinja_env.globals.setdefault("account_words", account_words)
    app.jinja_env.globals.setdefault("UNIT_LABELS", UNIT_LABELS)
    app.jinja_env.globals.setdefault("PERIOD_WORDS", PERIOD_WORDS)
    app.jinja_env.globals.setdefault("new_form_key", new_form_key)


def qr_svg(data: str, scale: int = 6) -> str:
    """A QR code as inline SVG (error correction M: readable when a card is worn or a screen dim)."""
    return segno.make(data, error="m").svg_inline(scale=scale, border=2, dark="#000", light="#fff", omitsize=True)
