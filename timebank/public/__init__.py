"""The public notice board (公示栏) and objections to claims under publicity; no login."""


def init_app(app) -> None:
    from timebank.public import pages

    pages.init_app(app)
