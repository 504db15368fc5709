"""The words of a notice, made from its event and facts when it is shown or sent, in the reader's
language (a text message: the deployment's, ``BABEL_DEFAULT_LOCALE``)."""

from __future__ import annotations

import json
from datetime import datetime

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from timebank.core.pages import hours_text, local_date
from timebank.notices.models import Notification

#: A short title per event, for the list.
EVENT_LABELS = {
    "claim_approved": _l("Claim approved"),
    "claim_rejected": _l("Claim not approved"),
    "claim_objected": _l("Objection to a claim"),
    "publicity_ended": _l("Points credited"),
    "points_expiring": _l("Points about to expire"),
    "pay_code_used": _l("Points spent at the supermarket"),
    "low_stock": _l("Low stock"),
    "month_signoff_waiting": _l("Month waiting for a second sign-off"),
}

#: How a notice leaves, and where it is, in words (the committee's and grid workers' pages).
DELIVERY_LABELS = {
    ("page", "none"): _l("On the page only"),
    ("sms", "pending"): _l("Text message waiting"),
    ("sms", "sent"): _l("Text message sent"),
    ("sms", "dead"): _l("Text message failed"),
    ("print", "pending"): _l("To be handed over on paper"),
    ("print", "delivered"): _l("Handed over on paper"),
}


def facts(notice: Notification) -> dict:
    try:
        found = json.loads(notice.payload or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _worth(points: int, minutes: int) -> str:
    parts = []
    if points:
        parts.append(_("%(n)d points", n=points))
    if minutes:
        parts.append(hours_text(minutes))
    return " + ".join(parts) or _("%(n)d points", n=0)


def _day(text: str | None) -> str:
    if not text:
        return ""
    try:
        return local_date(datetime.fromisoformat(text))
    except ValueError:
        return text


def text(notice: Notification) -> str:
    """The notice in words."""
    f = facts(notice)
    event = notice.event
    title = f.get("title", "")
    if event == "claim_approved":
        worth = _worth(int(f.get("points") or 0), int(f.get("minutes") or 0))
        if f.get("publicity_ends_at"):
            return _("Your claim “%(title)s” was approved. It is on the notice board until %(day)s; then %(worth)s "
                     "are credited.", title=title, day=_day(f["publicity_ends_at"]), worth=worth)
        return _("Your claim “%(title)s” was approved: %(worth)s credited.", title=title, worth=worth)
    if event == "claim_rejected":
        return _("Your claim “%(title)s” was not approved. Reason: %(reason)s", title=title,
                 reason=f.get("reason", ""))
    if event == "claim_objected":
        return _("Someone objected to your claim “%(title)s” on the notice board (%(reason)s). It goes back to "
                 "review.", title=title, reason=f.get("reason", ""))
    if event == "publicity_ended":
        return _("The notice board time of “%(title)s” is over: %(worth)s credited.", title=title,
                 worth=_worth(int(f.get("points") or 0), int(f.get("minutes") or 0)))
    if event == "points_expiring":
        return _("%(points)d points of your household expire by %(day)s. Spend them at the supermarket before then.",
                 points=int(f.get("points") or 0), day=f.get("by", ""))
    if event == "pay_code_used":
        return _("Your household spent %(points)d points at the supermarket (receipt %(receipt)s); %(balance)d "
                 "points left. If this was not you, tell the committee.", points=int(f.get("points") or 0),
                 receipt=f.get("receipt_no", ""), balance=int(f.get("balance") or 0))
    if event == "low_stock":
        return _("Low stock: %(name)s has %(left)d left (warning at %(threshold)d).", name=f.get("name", ""),
                 left=int(f.get("on_hand") or 0), threshold=int(f.get("threshold") or 0))
    if event == "month_signoff_waiting":
        return _("The month %(month)s was signed off by %(signer)s and waits for a second committee member's "
                 "sign-off.", month=f.get("month", ""), signer=f.get("signer", ""))
    return event


def text_message(notice: Notification) -> str:
    """The notice as a text message: in the deployment's language, signed with the sender's name
    (``TIMEBANK_SMS_SIGNATURE``, e.g. 【幸福里社区】) when one is set."""
    with force_locale(current_app.config.get("BABEL_DEFAULT_LOCALE") or "zh_CN"):
        words = text(notice)
    signature = current_app.config.get("TIMEBANK_SMS_SIGNATURE") or ""
    return f"{signature}{words}"
