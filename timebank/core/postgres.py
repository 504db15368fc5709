"""PostgreSQL connections that never wait without end.

A database that goes away must cost a request a few seconds and a 503, not a hung worker. Each wait
has its own bound (defaults in :class:`timebank.core.config.Defaults`, each with a ``TIMEBANK_PG_*``
variable; docs/operations.md, "Faults", says what each one covers):

* ``connect_timeout``: opening a connection, the TCP handshake and PostgreSQL's start-up exchange
  together (libpq's parameter, enforced by psycopg; at least 2 s).
* TCP keepalives (``keepalives_idle``, ``keepalives_interval``, ``keepalives_count``): an idle
  connection whose peer vanished is noticed and closed by the kernel (also a query whose answer was
  lost, since the client side is then idle).
* ``tcp_user_timeout``: data sent and not acknowledged (a query or COMMIT into a dead link) fails
  the socket after this long instead of the kernel's quarter of an hour of retransmissions.
* ``statement_timeout``, ``lock_timeout``, ``idle_in_transaction_session_timeout`` (and ``jit`` off): the server
  cancels a statement that runs too long or waits too long for a lock, and ends a session left
  idle inside a transaction (a client that vanished mid-transaction no longer holds its locks).
* a pooled connection that sat idle longer than ``TIMEBANK_PG_PING_AFTER_IDLE_S`` is pinged (one
  empty statement) when it is taken from the pool, and replaced when the ping fails, so a server
  that restarted while the app was quiet costs no request a 503. A connection that came back to
  the pool a moment ago (every one, under load) is not pinged: a ping on every request was one
  round trip in 25 of a sale's (docs/performance.md, "The sale's round trips"). A connection that
  died within that window fails its request's first statement with a 503 (nothing was written),
  and the pool then replaces every connection older than the failure.
* the *answer timeout*, on the client: no single wait for the server (a query, a fetch, COMMIT,
  the ping of an idle pooled connection) lasts longer than the statement timeout plus
  :data:`ANSWER_MARGIN_S`. It covers what the others cannot see: a path that still acknowledges
  TCP but no longer delivers (a proxy or load balancer that hangs), where the server never
  receives the statement it should time out. The connection is then closed, since its protocol
  state is unknown, and the error is a :class:`psycopg.errors.ConnectionTimeout` (503).

Commands (``timebank ...``: migrations, verify, month close, the scheduler) run with the larger
``TIMEBANK_PG_COMMAND_STATEMENT_TIMEOUT_MS`` for both the statement and the idle-in-transaction
timeouts: they may legitimately run one long statement, or compute in Python between statements.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import Pool

#: Seconds the client waits beyond the statement timeout, so the server's own cancellation (a clean
#: error, the connection kept) normally comes first.
ANSWER_MARGIN_S = 5.0

# The connect argument that carries the answer timeout to :func:`_connect` (never sent to libpq).
_ANSWER_ARG = "timebank_answer_timeout"
# The connect argument that carries the idle time after which a pooled connection is pinged.
_PING_ARG = "timebank_ping_after_idle"
# Key in the pool's per-connection ``info``: when the connection was last returned to the pool.
_RETURNED_AT = "timebank_returned_at"

#: A tighter bound for the waits of the current context (``/healthz``), see :func:`answer_within`.
_tighter: contextvars.ContextVar[float | None] = contextvars.ContextVar("timebank_pg_answer_within",
                                                                        default=None)

_installed = False


def engine_options(config: Mapping[str, Any]) -> dict:
    """The ``connect_args`` of a PostgreSQL engine (psycopg 3) from the application's configuration."""
    command = bool(config.get("TIMEBANK_COMMAND_LINE"))
    statement_ms = int(config["TIMEBANK_PG_COMMAND_STATEMENT_TIMEOUT_MS" if command
                              else "TIMEBANK_PG_STATEMENT_TIMEOUT_MS"])
    idle_ms = statement_ms if command else int(config["TIMEBANK_PG_IDLE_IN_TRANSACTION_TIMEOUT_MS"])
    # jit off: the monthly report's month pass is estimated above jit_above_cost, and compiling it
    # took 268 of its 425 ms at 1M transactions; nothing the application asks runs long enough to
    # win that back (docs/performance.md).
    server = {"statement_timeout": statement_ms, "lock_timeout": int(config["TIMEBANK_PG_LOCK_TIMEOUT_MS"]),
              "idle_in_transaction_session_timeout": idle_ms, "jit": "off"}
    return {"connect_args": {
        "application_name": "timebank",
        "connect_timeout": int(config["TIMEBANK_PG_CONNECT_TIMEOUT_S"]),
        "keepalives": 1,
        "keepalives_idle": int(config["TIMEBANK_PG_KEEPALIVES_IDLE_S"]),
        "keepalives_interval": int(config["TIMEBANK_PG_KEEPALIVES_INTERVAL_S"]),
        "keepalives_count": int(config["TIMEBANK_PG_KEEPALIVES_COUNT"]),
        "tcp_user_timeout": int(config["TIMEBANK_PG_TCP_USER_TIMEOUT_MS"]),
        "options": " ".join(f"-c {name}={value}" for name, value in server.items()),
        # 0 turns the statement timeout off, and with it the client's bound.
        _ANSWER_ARG: statement_ms / 1000 + ANSWER_MARGIN_S if statement_ms > 0 else None,
        _PING_ARG: float(config["TIMEBANK_PG_PING_AFTER_IDLE_S"]),
    }}


@contextmanager
def answer_within(seconds: float) -> Iterator[None]:
    """Bound every wait for the server in this block to ``seconds`` (or the connection's own bound,
    whichever is shorter). Connecting keeps its own ``connect_timeout``."""
    token = _tighter.set(seconds)
    try:
        yield
    finally:
        _tighter.reset(token)


def _bounded_connection_class():
    import psycopg

    class BoundedConnection(psycopg.Connection):
        """A psycopg connection whose every wait for the server ends (see the module docs)."""

        answer_timeout: float | None = None

        def wait(self, gen, interval=None, timeout=None):  # psycopg's every query, fetch and COMMIT
            bounds = [b for b in (timeout, self.answer_timeout, _tighter.get()) if b is not None]
            bound = min(bounds) if bounds else None
            poll = {} if interval is None else {"interval": interval}  # else psycopg's own default
            try:
                return super().wait(gen, timeout=bound, **poll)
            except psycopg.errors._WaitTimeout:
                if timeout is not None and bound == timeout:
                    raise  # the caller's own timeout (psycopg's notifies, cancellation)
                self.pgconn.finish()  # halfway through an exchange: the connection cannot be reused
                raise psycopg.errors.ConnectionTimeout(
                    f"no answer from the database within {bound:g} s; connection closed") from None

    return BoundedConnection


def install() -> None:
    """Connect PostgreSQL engines made with :func:`engine_options` through the bounded connection."""
    global _installed
    if _installed:
        return
    _installed = True
    holder: dict[str, Any] = {}

    @event.listens_for(Engine, "do_connect")
    def _connect(dialect, _record, cargs, cparams):
        if _ANSWER_ARG not in cparams:
            return None
        answer = cparams.pop(_ANSWER_ARG)
        ping_after = cparams.pop(_PING_ARG, 0.0)
        if dialect.driver != "psycopg":  # another driver: just the libpq settings
            return None
        if "class" not in holder:
            holder["class"] = _bounded_connection_class()
        connection = holder["class"].connect(*cargs, **cparams)
        connection.answer_timeout = answer
        connection.ping_after_idle = ping_after
        return connection

    @event.listens_for(Pool, "checkin")
    def _returned(dbapi_connection, record):
        if dbapi_connection is not None and hasattr(dbapi_connection, "ping_after_idle"):
            record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(Pool, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy):
        ping_after = getattr(dbapi_connection, "ping_after_idle", None)
        returned_at = record.info.get(_RETURNED_AT)
        if ping_after is None or returned_at is None or time.monotonic() - returned_at < ping_after:
            return  # a fresh connection, or one used a moment ago
        try:
            _ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - whatever the failure, this connection is not usable
            # The pool discards it and hands out another (a new one if need be).
            raise DisconnectionError(f"pooled connection failed its ping: {exc}") from exc


def _ping(dbapi_connection) -> None:
    """One empty statement outside any transaction, as SQLAlchemy's own pre-ping sends."""
    autocommit = dbapi_connection.autocommit
    if not autocommit:
        dbapi_connection.autocommit = True
    try:
        dbapi_connection.execute(";")
    finally:
        if not autocommit and not dbapi_connection.closed:
            dbapi_connection.autocommit = False
