"""Audit: signed Merkle checkpoints, month close with two sign-offs, verification, the ledger
browser; supervisors read only. The committee's books pages, which show the reports too, are in
:mod:`timebank.reports.books_pages`."""


def init_app(app) -> None:
    from timebank.audit import plugin

    plugin.init_app(app)
