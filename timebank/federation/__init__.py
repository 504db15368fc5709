"""Hours between deployments (通存通兑): signed vouchers, trusted counterparties, clearing
(docs/federation.md)."""


def init_app(app) -> None:
    from timebank.federation import jobs, pages  # noqa: F401  (jobs registers itself)

    pages.init_app(app)
