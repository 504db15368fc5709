"""Audit: signed Merkle checkpoints, month close with two sign-offs, verification, the ledger
browser and its exports; supervisors read only; the committee's books pages; witnesses' cosignatures;
households' monthly statements with inclusion proofs."""


def init_app(app) -> None:
    from timebank.audit import books_pages, plugin, statement_pages

    plugin.init_app(app)
    books_pages.init_app(app)
    statement_pages.init_app(app)
