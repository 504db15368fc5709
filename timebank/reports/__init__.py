"""Reports: monthly figures and exports, anomaly flags, charts."""


def init_app(app) -> None:
    from timebank.reports import pages

    pages.init_app(app)
