"""Helpers shared by the tests of the machine's faults (test_ops_faults, test_database_locking): a second
app over the same database, the SQLite file behind an app, and what a 503 must look like."""

from __future__ import annotations

from conftest import base_config
from timebank import create_app


def assert_unavailable(response):
    assert response.status_code == 503, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["error"] == "service_unavailable" and body["status"] == 503
    assert "nothing was changed" in body["detail"]
    assert int(response.headers["Retry-After"]) > 0


def sqlite_path(app) -> str:
    return app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")


def sibling_app(app, tmp_path, name, **config):
    """A second app over the same database: another worker process, as far as the database can tell."""
    folder = tmp_path / name
    folder.mkdir()
    cfg = base_config(folder, app.config["SQLALCHEMY_DATABASE_URI"])
    cfg.update(config)
    return with_clock(create_app(cfg), app)


def with_clock(new_app, app):
    new_app.extensions["timebank.core.clock"] = app.extensions["timebank.core.clock"]
    return new_app


def assert_outcome_unknown(response):
    """A 503 for a failure at COMMIT: the outcome is not known, and the detail says how to learn it."""
    assert response.status_code == 503, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["error"] == "service_unavailable" and "Idempotency-Key" in body["detail"]
    assert int(response.headers["Retry-After"]) > 0


def through_a_silenceable_proxy(app, tmp_path):
    """(an app over the same PostgreSQL through a proxy that can go silent, the proxy), with short
    timeouts: the server ends a transaction left idle after 1.5 s, the client waits at most 6 s."""
    from sqlalchemy.engine import make_url

    from conftest import TEST_DB_URL
    from network_support import SilenceableProxy

    target = make_url(TEST_DB_URL)
    proxy = SilenceableProxy((target.host or "127.0.0.1", target.port or 5432))
    through_url = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    through = sibling_app(app, tmp_path, "through", SQLALCHEMY_DATABASE_URI=through_url,
                          TIMEBANK_PG_CONNECT_TIMEOUT_S=2, TIMEBANK_PG_STATEMENT_TIMEOUT_MS=1000,
                          TIMEBANK_PG_IDLE_IN_TRANSACTION_TIMEOUT_MS=1500, TIMEBANK_HEALTHZ_TIMEOUT_MS=1000)
    return through, proxy
