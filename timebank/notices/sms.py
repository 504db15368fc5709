"""Text messages (短信): a small adapter between the notices and whatever sends them.

The notices hand a :class:`TextMessage` to the deployment's gateway, an object with one method,
``send(message)``, which returns when the gateway took the message and raises :class:`SendFailed`
when it did not (``permanent`` when trying again cannot help, such as a number the gateway refuses).

* ``TIMEBANK_SMS_URL``: the built-in :class:`HttpGateway` posts each message as JSON
  ``{"id", "to", "text"}`` to this address (with ``Authorization: Bearer TIMEBANK_SMS_TOKEN`` when
  that is set, waiting at most ``TIMEBANK_SMS_TIMEOUT_S`` seconds). Any 2xx answer means taken; 4xx
  (but 408 and 429) means refused for good; anything else, or no answer, is tried again later.
  ``id`` is the same on every try of one notice, so a gateway can drop a repeat.
* ``TIMEBANK_SMS_GATEWAY = "package.module:factory"``: a gateway of one's own (a provider's SDK);
  ``factory(config)`` returns it. It wins over ``TIMEBANK_SMS_URL``.
* neither: no text messages; residents read their notices on their page, or on paper.
"""

from __future__ import annotations

import importlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Protocol

from flask import current_app

_EXTENSION = "timebank.notices.sms"


@dataclass(frozen=True)
class TextMessage:
    #: Stable for every try of one notice (``notice-<id>``): the gateway may drop a repeat.
    id: str
    to: str
    text: str


class SendFailed(Exception):
    """The gateway did not take the message; ``permanent``: trying again cannot help."""

    def __init__(self, reason: str, permanent: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Gateway(Protocol):
    def send(self, message: TextMessage) -> None: ...


class HttpGateway:
    """Posts each message as JSON to an HTTP gateway (a provider's, or a relay of the deployment's)."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 5.0):
        self.url = url
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_config(cls, config) -> HttpGateway:
        return cls(config["TIMEBANK_SMS_URL"], config.get("TIMEBANK_SMS_TOKEN") or None,
                   float(config.get("TIMEBANK_SMS_TIMEOUT_S") or 5))

    def send(self, message: TextMessage) -> None:
        body = json.dumps({"id": message.id, "to": message.to, "text": message.text}, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - configured URL
                response.read()
        except urllib.error.HTTPError as exc:
            permanent = 400 <= exc.code < 500 and exc.code not in (408, 429)
            raise SendFailed(f"gateway answered {exc.code}", permanent=permanent) from exc
        except (urllib.error.URLError, OSError) as exc:  # refused, unreachable, timed out
            reason = getattr(exc, "reason", exc)
            raise SendFailed(f"gateway not reached: {reason}") from exc


def _load(config) -> Gateway | None:
    named = config.get("TIMEBANK_SMS_GATEWAY")
    if named:
        module, _, factory = named.partition(":")
        return getattr(importlib.import_module(module), factory)(config)
    if config.get("TIMEBANK_SMS_URL"):
        return HttpGateway.from_config(config)
    return None


def gateway() -> Gateway | None:
    """The app's gateway (made once per app), or None when text messages are not set up."""
    app = current_app._get_current_object()
    if _EXTENSION not in app.extensions:
        app.extensions[_EXTENSION] = _load(app.config)
    return app.extensions[_EXTENSION]


def enabled() -> bool:
    """Whether text messages are set up (then residents with a phone are told by text)."""
    return bool(current_app.config.get("TIMEBANK_SMS_GATEWAY") or current_app.config.get("TIMEBANK_SMS_URL"))
