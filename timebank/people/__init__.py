"""People and places: communities (社区/村), households (户), residents (居民); their API.

Logins themselves are in :mod:`timebank.core.users` (every feature asks who is acting); this feature
manages the people behind them.
"""


def init_app(app) -> None:
    from timebank.people import import_pages, logins_pages, pages
    from timebank.people.logins_api import refuse_until_password_changed

    pages.init_app(app)
    logins_pages.init_app(app)
    import_pages.init_app(app)
    # A login opened with a one-time password chooses a new one before anything else (API: 403).
    app.before_request(refuse_until_password_changed)
