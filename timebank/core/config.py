"""Configuration defaults. Order: these defaults, ``instance/config.py``, ``TIMEBANK_*`` variables,
then the test configuration."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

#: Variables read from the environment, and the Flask config key each one sets.
ENVIRONMENT = {
    "TIMEBANK_DATABASE_URL": "SQLALCHEMY_DATABASE_URI",
    "TIMEBANK_READ_DATABASE_URL": "TIMEBANK_READ_DATABASE_URL",
    "TIMEBANK_SECRET_KEY": "SECRET_KEY",
    "TIMEBANK_TIMEZONE": "TIMEBANK_TIMEZONE",
    "TIMEBANK_RATELIMIT_STORAGE_URL": "RATELIMIT_STORAGE_URI",
    "TIMEBANK_ORIGIN": "TIMEBANK_ORIGIN",
    "TIMEBANK_BASE_URL": "TIMEBANK_BASE_URL",
    "TIMEBANK_VOUCHER_DAYS": "TIMEBANK_VOUCHER_DAYS",
    "TIMEBANK_TOKEN_TTL_SECONDS": "TIMEBANK_TOKEN_TTL_SECONDS",
    "TIMEBANK_EXPORT_RUNNER": "TIMEBANK_EXPORT_RUNNER",
    "TIMEBANK_EXPORT_KEEP_HOURS": "TIMEBANK_EXPORT_KEEP_HOURS",
    "TIMEBANK_SQLITE_BUSY_TIMEOUT_MS": "TIMEBANK_SQLITE_BUSY_TIMEOUT_MS",
    "TIMEBANK_LOGIN_RATE_LIMIT": "TIMEBANK_LOGIN_RATE_LIMIT",
    "TIMEBANK_LOGIN_ACCOUNT_RATE_LIMIT": "TIMEBANK_LOGIN_ACCOUNT_RATE_LIMIT",
    # Text messages of the notices (timebank/notices/sms.py).
    "TIMEBANK_SMS_URL": "TIMEBANK_SMS_URL",
    "TIMEBANK_SMS_TOKEN": "TIMEBANK_SMS_TOKEN",
    "TIMEBANK_SMS_GATEWAY": "TIMEBANK_SMS_GATEWAY",
    "TIMEBANK_SMS_TIMEOUT_S": "TIMEBANK_SMS_TIMEOUT_S",
    "TIMEBANK_SMS_SIGNATURE": "TIMEBANK_SMS_SIGNATURE",
}

#: PostgreSQL's timeouts (timebank/core/postgres.py): each variable sets the config key of its name.
POSTGRES_TIMEOUTS = (
    "TIMEBANK_PG_CONNECT_TIMEOUT_S", "TIMEBANK_PG_KEEPALIVES_IDLE_S", "TIMEBANK_PG_KEEPALIVES_INTERVAL_S",
    "TIMEBANK_PG_KEEPALIVES_COUNT", "TIMEBANK_PG_TCP_USER_TIMEOUT_MS", "TIMEBANK_PG_STATEMENT_TIMEOUT_MS",
    "TIMEBANK_PG_LOCK_TIMEOUT_MS", "TIMEBANK_PG_IDLE_IN_TRANSACTION_TIMEOUT_MS",
    "TIMEBANK_PG_COMMAND_STATEMENT_TIMEOUT_MS", "TIMEBANK_HEALTHZ_TIMEOUT_MS", "TIMEBANK_PG_PING_AFTER_IDLE_S",
)
ENVIRONMENT.update({name: name for name in POSTGRES_TIMEOUTS})

INTEGER_KEYS = {"TIMEBANK_TOKEN_TTL_SECONDS", "TIMEBANK_VOUCHER_DAYS", "TIMEBANK_SQLITE_BUSY_TIMEOUT_MS",
                "TIMEBANK_SMS_TIMEOUT_S", "TIMEBANK_EXPORT_KEEP_HOURS",
                *POSTGRES_TIMEOUTS}


class Defaults:
    TIMEBANK_TIMEZONE = "Asia/Shanghai"
    #: Bearer tokens expire after this many seconds (12 hours: one working day).
    TIMEBANK_TOKEN_TTL_SECONDS = 12 * 3600
    #: How long a SQLite writer waits for the lock before giving up (then 503 with Retry-After).
    TIMEBANK_SQLITE_BUSY_TIMEOUT_MS = 30_000
    # PostgreSQL: what each bound covers is in timebank/core/postgres.py and docs/operations.md.
    #: Opening a connection (TCP and PostgreSQL's start-up exchange); libpq's minimum is 2.
    TIMEBANK_PG_CONNECT_TIMEOUT_S = 5
    #: TCP keepalives: first probe after this much silence, then every interval, this many probes.
    TIMEBANK_PG_KEEPALIVES_IDLE_S = 10
    TIMEBANK_PG_KEEPALIVES_INTERVAL_S = 3
    TIMEBANK_PG_KEEPALIVES_COUNT = 3
    #: Data sent and not acknowledged this long fails the connection (Linux ``TCP_USER_TIMEOUT``).
    TIMEBANK_PG_TCP_USER_TIMEOUT_MS = 10_000
    #: The longest statement of a request; the client gives up 5 s after it. 0: no limit.
    TIMEBANK_PG_STATEMENT_TIMEOUT_MS = 30_000
    #: The longest wait for a row, table or advisory lock (requests and commands).
    TIMEBANK_PG_LOCK_TIMEOUT_MS = 5_000
    #: The server ends a request's session left idle inside a transaction this long.
    TIMEBANK_PG_IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000
    #: Statement and idle-in-transaction timeout of commands (migrations, verify, jobs): one hour.
    TIMEBANK_PG_COMMAND_STATEMENT_TIMEOUT_MS = 3_600_000
    #: A pooled connection idle this long is pinged before use (and replaced if dead); one used
    #: more recently is not (docs/performance.md, "The sale's round trips").
    TIMEBANK_PG_PING_AFTER_IDLE_S = 5
    #: How long ``/healthz`` waits for the database to answer ``SELECT 1`` (PostgreSQL).
    TIMEBANK_HEALTHZ_TIMEOUT_MS = 3_000
    #: Name of this deployment in signed checkpoints (the C2SP "origin" line) and in the hour vouchers
    #: it issues and accepts (docs/federation.md).
    TIMEBANK_ORIGIN = "timebank.local/ledger"
    #: How many days an hour voucher is good for, unless its request says (docs/federation.md).
    TIMEBANK_VOUCHER_DAYS = 90
    #: Background ledger exports (timebank/audit/export_runs.py): "process" starts one process per
    #: export; "none" starts nothing (``timebank export-run ID`` writes one). Files kept this long.
    TIMEBANK_EXPORT_RUNNER = "process"
    TIMEBANK_EXPORT_KEEP_HOURS = 24
    #: Public address used in QR codes; defaults to the address of the request.
    TIMEBANK_BASE_URL = None
    #: Text messages (timebank/notices/sms.py): the HTTP gateway's address (none: no text messages),
    #: its bearer token, or a gateway of one's own ("module:factory"); seconds to wait for an answer;
    #: the sender's name put before each message, e.g. 【幸福里社区】.
    TIMEBANK_SMS_URL = None
    TIMEBANK_SMS_TOKEN = None
    TIMEBANK_SMS_GATEWAY = None
    TIMEBANK_SMS_TIMEOUT_S = 5
    TIMEBANK_SMS_SIGNATURE = ""
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    #: Failed logins allowed from one address, and at one account (successful logins do not count).
    TIMEBANK_LOGIN_RATE_LIMIT = "10 per minute"
    TIMEBANK_LOGIN_ACCOUNT_RATE_LIMIT = "20 per hour"
    RATELIMIT_STORAGE_URI = "memory://"
    RATELIMIT_HEADERS_ENABLED = True
    # Large enough for any honest request; larger bodies get 413 before they are read.
    MAX_CONTENT_LENGTH = 1024 * 1024
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    BABEL_DEFAULT_LOCALE = "zh_CN"
    BABEL_DEFAULT_TIMEZONE = "Asia/Shanghai"
    API_TITLE = "timebank"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api/v1"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "/docs"
    OPENAPI_SWAGGER_UI_URL = "/api/v1/static/swagger-ui/"
    JSON_SORT_KEYS = False


def apply_environment(config) -> None:
    for variable, key in ENVIRONMENT.items():
        value = os.environ.get(variable)
        if value is not None and value != "":
            config[key] = int(value) if key in INTEGER_KEYS else value


def persistent_secret(instance_path: str) -> str:
    """A secret key kept in the instance folder, so sessions survive restarts without set-up."""
    path = Path(instance_path) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value
