"""Reports: monthly figures and exports, anomaly flags, charts."""


def init_app(app) -> None:
    from timebank.reports import operations, pages

    pages.init_app(app)
    app.extensions.setdefault("timebank.household_panels", []).append(pages.household_panel)
    app.extensions.setdefault("timebank.verify_hooks", []).append(operations.verify_month_totals)
