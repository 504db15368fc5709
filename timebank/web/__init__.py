"""Server-rendered pages (Jinja). Residents, clerks and committees use these, not the API."""

from flask import Blueprint, render_template_string

bp = Blueprint("web", __name__)

_HOME = """<!doctype html><html lang="zh-CN"><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>时间银行 · 积分超市</title>
<body style="font: 20px/1.6 sans-serif; max-width: 40em; margin: 2em auto; padding: 0 1em">
<h1>时间银行 · 积分超市</h1>
<p>社区积分与志愿时间银行。API 文档：<a href="/api/v1/docs">/api/v1/docs</a></p>
</body></html>"""


@bp.get("/")
def home():
    return render_template_string(_HOME)


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


def init_app(app) -> None:
    app.register_blueprint(bp)
    from timebank.web import checkin

    checkin.init_app(app)
    from timebank.web import receipts

    receipts.init_app(app)
