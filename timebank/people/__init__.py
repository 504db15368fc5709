"""People and places: communities (社区/村), households (户), residents (居民); their API.

Logins themselves are in :mod:`timebank.core.users` (every feature asks who is acting); this feature
manages the people behind them.
"""


def init_app(app) -> None:
    from timebank.people import import_pages, pages

    pages.init_app(app)
    import_pages.init_app(app)
