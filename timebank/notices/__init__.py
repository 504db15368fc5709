"""Notices (通知): an outbox written with each event it tells of, sent by text message through a
pluggable SMS gateway (the job ``send_notices``, with retries and dead letters), shown on each
person's notices page, and printed for grid workers to hand to residents without a phone."""


def init_app(app) -> None:
    from timebank.notices import jobs, pages  # noqa: F401  (jobs registers itself)

    pages.init_app(app)
