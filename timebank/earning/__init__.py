"""Earning points: the points list (积分细则), claims (申报) with review and publicity (公示), tasks
with QR check-in, point expiry, honours with their half-yearly review, deductions; the committee's
claim, task, honour and deduction pages and the check-in page."""


def init_app(app) -> None:
    from timebank.earning import checkin_pages, honours_pages, jobs, pages  # noqa: F401  (jobs registers itself)

    checkin_pages.init_app(app)
    pages.init_app(app)
    honours_pages.init_app(app)
