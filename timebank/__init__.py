"""timebank: points exchange and volunteer time bank for communities (社区积分超市与时间银行)."""

from __future__ import annotations

import importlib
import os

from flask import Flask

from timebank.config import Defaults, apply_environment, persistent_secret

__version__ = "0.1.0"


def create_app(test_config: dict | None = None) -> Flask:
    """The application factory.

    Configuration: :class:`timebank.config.Defaults`, then ``instance/config.py`` if present, then
    ``TIMEBANK_*`` environment variables, then ``test_config``.
    """
    instance_path = (test_config or {}).get("INSTANCE_PATH") or os.environ.get("TIMEBANK_INSTANCE_PATH")
    app = Flask(
        __name__,
        instance_path=os.path.abspath(instance_path) if instance_path else None,
        instance_relative_config=True,
    )
    app.config.from_object(Defaults)
    app.config.from_pyfile("config.py", silent=True)
    apply_environment(app.config)
    if test_config:
        app.config.update(test_config)
    os.makedirs(app.instance_path, exist_ok=True)

    app.config.setdefault(
        "SQLALCHEMY_DATABASE_URI", "sqlite:///" + os.path.join(app.instance_path, "timebank.sqlite")
    )
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = persistent_secret(app.instance_path)

    from timebank.database import engine_options, install_sqlite_settings

    busy_ms = int(app.config["TIMEBANK_SQLITE_BUSY_TIMEOUT_MS"])
    install_sqlite_settings(busy_ms)
    options = engine_options(app.config["SQLALCHEMY_DATABASE_URI"], busy_ms)
    options.update(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options

    from timebank import models  # noqa: F401  (registers the tables)
    from timebank.extensions import babel, csrf, db, limiter, login_manager, migrate

    db.init_app(app)
    from timebank import database

    database.init_app(app)  # before any hook that reads the database
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "migrations"))
    login_manager.init_app(app)
    from timebank.security import load_session_user

    login_manager.user_loader(load_session_user)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=_select_locale)
    limiter.init_app(app)

    from timebank import http_errors

    http_errors.init_app(app)

    # Parts that build on the core (the JSON API, the pages) plug themselves in by name, so that
    # imports keep pointing one way: api -> timebank -> ledger.
    for name in app.config.get("TIMEBANK_PLUGINS", ("api", "timebank.web", "timebank.transparency", "timebank.ops")):
        module = importlib.import_module(name)
        module.init_app(app)

    from timebank.cli import register_commands

    register_commands(app)
    return app


def _select_locale():
    from flask import request, session

    chosen = request.args.get("lang") or session.get("lang")
    if chosen in ("zh_CN", "en"):
        return chosen
    # Chinese unless the person chose otherwise: many users' phones are set to English by a relative.
    return "zh_CN"
