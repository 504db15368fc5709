"""The love supermarket (爱心超市): goods, stock and lots, the till's sale, voids and returns, receipts;
the clerk's pages."""


def init_app(app) -> None:
    from timebank.shop import operations, pages, partner_pages, receipts

    # `timebank verify` also checks that on-hand stock equals the movement log.
    app.extensions.setdefault("timebank.verify_hooks", []).append(operations.verify_hook)
    receipts.init_app(app)
    pages.init_app(app)
    partner_pages.init_app(app)
