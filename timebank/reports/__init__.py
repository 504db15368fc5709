"""Reports: monthly figures and exports, anomaly flags, charts; the committee's books pages (ledger,
reports, month close, anomalies), built on the audit feature."""


def init_app(app) -> None:
    from timebank.reports import books_pages

    books_pages.init_app(app)
