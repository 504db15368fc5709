"""The application factory: configuration, extensions, the features, then the surfaces.

The order is the dependency direction read bottom-up: the core (configuration, database, errors,
logins) first, then each feature of :data:`FEATURES` (its tables, jobs, hooks and pages), then the
parts named in ``TIMEBANK_PLUGINS`` (the JSON API, the page frame, operations' guards), each with an
``init_app(app)``. Nothing here imports a feature by name: features are plugged in from the lists,
so the core never depends on them.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

from flask import Flask, has_request_context, request, session

from timebank.core import boundary
from timebank.core.config import Defaults, apply_environment, persistent_secret

#: The feature packages, in dependency order. Each may have ``models`` (its tables) and ``init_app``.
FEATURES = (
    "timebank.people",
    "timebank.notices",
    "timebank.earning",
    "timebank.hours",
    "timebank.shop",
    "timebank.audit",
    "timebank.federation",
    "timebank.reports",
    "timebank.public",
)

class TimebankFlask(Flask):
    """Flask with the request's single commit point (:mod:`timebank.core.boundary`)."""

    def dispatch_request(self):
        response = self.make_response(super().dispatch_request())
        boundary.finish_request()
        return response


#: The surfaces built on the features, plugged in after them.
PLUGINS = ("api", "timebank.web", "timebank.ops.maintenance", "timebank.cli")


def create_app(test_config: dict | None = None) -> Flask:
    """The application factory.

    Configuration: :class:`timebank.core.config.Defaults`, then ``instance/config.py`` if present, then
    ``TIMEBANK_*`` environment variables, then ``test_config``.
    """
    instance_path = (test_config or {}).get("INSTANCE_PATH") or os.environ.get("TIMEBANK_INSTANCE_PATH")
    # Named after the package, not this module: templates, static files and migrations live there.
    app = TimebankFlask(
        "timebank",
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

    from timebank.core import database

    busy_ms = int(app.config["TIMEBANK_SQLITE_BUSY_TIMEOUT_MS"])
    database.install_sqlite_settings(busy_ms)
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    options = database.engine_options(uri, busy_ms)
    if uri.startswith("postgresql"):
        from timebank.core import postgres

        postgres.install()
        options["connect_args"] = {**options.get("connect_args", {}),
                                   **postgres.engine_options(app.config)["connect_args"]}
    # Configured options win; their connect_args are merged key by key with the defaults above.
    configured = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    if "connect_args" in configured:
        configured["connect_args"] = {**options.get("connect_args", {}), **configured["connect_args"]}
    options.update(configured)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    replica = app.config.get("TIMEBANK_READ_DATABASE_URL")
    if replica:
        from timebank.core import postgres

        # Reports and exports read from here (database.reading(replica=True)); no table is bound to it.
        binds = dict(app.config.get("SQLALCHEMY_BINDS") or {})
        binds[database.REPLICA] = {"url": replica, **database.engine_options(replica, busy_ms),
                                   **({"connect_args": postgres.engine_options(app.config)["connect_args"]}
                                      if replica.startswith("postgresql") else {})}
        app.config["SQLALCHEMY_BINDS"] = binds

    from timebank.core import ledgering

    ledgering.configure()  # the ledger's units and writer lock, before any table is used

    from timebank.core import audit_log, auth, browser, problems, refusals
    from timebank.core.extensions import babel, csrf, db, limiter, login_manager, migrate

    features = [importlib.import_module(name) for name in app.config.get("TIMEBANK_FEATURES", FEATURES)]
    for feature in features:  # every table registered before the first query
        if importlib.util.find_spec(f"{feature.__name__}.models") is not None:
            importlib.import_module(f"{feature.__name__}.models")

    db.init_app(app)
    database.init_app(app)  # before any hook that reads the database
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    migrate.init_app(app, db, directory=os.path.join(package, "migrations"))
    login_manager.init_app(app)
    auth.init_app(app)
    csrf.init_app(app)
    browser.init_app(app)
    babel.init_app(app, locale_selector=_select_locale)
    limiter.init_app(app)
    problems.init_app(app)
    refusals.init_app(app)  # insider refusals recorded after their request (its own transaction)
    audit_log.configure_export_log()

    for feature in features:
        if hasattr(feature, "init_app"):
            feature.init_app(app)
    for name in app.config.get("TIMEBANK_PLUGINS", PLUGINS):
        importlib.import_module(name).init_app(app)
    return app


def _select_locale():
    if not has_request_context():  # a command: the default language
        return None
    chosen = request.args.get("lang") or session.get("lang")
    if chosen in ("zh_CN", "en"):
        return chosen
    # Chinese unless the person chose otherwise: many users' phones are set to English by a relative.
    return "zh_CN"
