"""A printable receipt (兑换小票) for the supermarket's clerk: ``/receipts/<id>``.

Protected by the page session (Flask-Login); staff of the community and the household's own
residents may open it. Minimal clean HTML for an 80 mm receipt printer, or A4 with ``?paper=a4``.
"""

from __future__ import annotations

from flask import Blueprint, abort, render_template_string, request
from flask_login import current_user

from timebank.core.clock import to_local
from timebank.core.errors import NotFound
from timebank.core.extensions import db
from timebank.core.users import User
from timebank.people.models import Community, Household
from timebank.shop import operations as ops
from timebank.shop.models import PartnerShop

bp = Blueprint("receipts", __name__)

_RECEIPT = ("""<!doctype html><html lang="zh-CN"><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>兑换小票 No.{{ r.receipt_no }}</title>
<link rel="icon" href="data:,">
<style>
 /* 80 mm receipt printers by default (72 mm printable); ?paper=a4 for an office printer. */
 @page { size: {{ "A4" if a4 else "80mm auto" }}; margin: {{ "15mm" if a4 else "3mm" }}; }
 body { font: {{ "16px" if a4 else "13px" }}/1.45 "Noto Sans CJK SC", sans-serif; color: #000;
        max-width: {{ "40em" if a4 else "72mm" }}; margin: 1em auto; padding: 0 .5em; }
 h1 { font-size: 1.25em; text-align: center; margin: .2em 0 .4em }
 table { width: 100%; border-collapse: collapse; margin: .6em 0 }
 th, td { padding: .15em .2em; border-bottom: 1px dashed #777; text-align: left; vertical-align: top }
 td.n, th.n { text-align: right; white-space: nowrap }
 .void { font-weight: bold; border: 2px solid #000; padding: .2em .5em; text-align: center }
 dl { display: grid; grid-template-columns: auto 1fr; gap: .05em .8em; margin: .4em 0 }
 dt { color: #333 } dd { margin: 0; word-break: break-all }
 .total { font-size: 1.2em }
 .bar { display: flex; gap: 1em; align-items: center; justify-content: center; margin: 1em 0 }
 .bar button { font: inherit; font-size: 16px; padding: .5em 1.5em; min-height: 48px }
 @media print { .bar { display: none } body { margin: 0 auto } }
</style>
<body>
<h1>{{ community.name }} · {{ partner.name if partner else "爱心超市" }}兑换小票</h1>
{% if r.status == "voided" %}<p class="void">已作废 · {{ r.void_reason }}</p>{% endif %}
<dl>
 <dt>小票号</dt><dd>No.{{ r.receipt_no }}</dd>
 <dt>时间</dt><dd>{{ when(r.created_at) }}</dd>
 <dt>户</dt><dd>{{ household.name }}（{{ household.member_code }}）</dd>
 <dt>收银员</dt><dd>{{ clerk.username if clerk else "" }}</dd>
 <dt>识别方式</dt><dd>{{ "手机付款码" if r.identified_by == "pay_code" else "积分卡" }}</dd>
</dl>
<table>
 <tr><th>商品</th><th class="n">数量</th><th class="n">单价（积分）</th><th class="n">小计</th></tr>
 {% for line in r.lines %}
 <tr><td>{{ line.name }}</td><td class="n">{{ line.quantity }}</td><td class="n">{{ line.unit_points }}</td>
     <td class="n">{{ line.line_points }}</td></tr>
 {% endfor %}
 <tr class="total"><th>合计</th><th></th><th></th><th class="n">{{ r.total_points }} 积分</th></tr>
</table>
{% if r.returns %}
<table>
 <tr><th>退货</th><th class="n">数量</th><th class="n">退回积分</th></tr>
 {% for ret in r.returns %}{% for line in ret.lines %}
 <tr><td>{{ names[line.item_id] }}（{{ when(ret.created_at) }}）</td><td class="n">{{ line.quantity }}</td>
     <td class="n">{{ line.points }}</td></tr>
 {% endfor %}{% endfor %}
</table>
{% endif %}
<dl>
 <dt>兑换后余额</dt><dd>{{ r.balance_after }} 积分</dd>
 {% if r.returned_points %}<dt>已退积分</dt><dd>{{ r.returned_points }} 积分</dd>{% endif %}
 {% if r.status == "voided" %}<dt>作废时间</dt><dd>{{ when(r.voided_at) }}</dd>{% endif %}
 <dt>账本交易号</dt><dd>#{{ r.transaction_id }}"""
            """{% if r.void_transaction_id %}（冲正 #{{ r.void_transaction_id }}）{% endif %}</dd>
</dl>
<p style="text-align:center">感谢爱心单位捐赠 · 积分不可兑现</p>
<div class="bar"><button id="print" type="button">打印</button>
 <a href="?paper={{ "80mm" if a4 else "a4" }}">{{ "80 mm 小票" if a4 else "A4 纸" }}</a></div>
<script src="{{ url_for('static', filename='print.js') }}"></script>
</body></html>""")


@bp.get("/receipts/<int:redemption_id>")
def receipt(redemption_id: int):
    if not current_user.is_authenticated:
        abort(401)
    try:
        r = ops.visible_redemption(current_user._get_current_object(), redemption_id)
    except NotFound:
        abort(404)
    names = {line.item_id: line.name for line in r.lines}
    return render_template_string(
        _RECEIPT, r=r, names=names, a4=request.args.get("paper") == "a4",
        community=db.session.get(Community, r.community_id),
        household=db.session.get(Household, r.household_id),
        clerk=db.session.get(User, r.clerk_id) if r.clerk_id else None,
        partner=db.session.get(PartnerShop, r.partner_id) if r.partner_id else None,
        when=lambda moment: to_local(moment).strftime("%Y-%m-%d %H:%M") if moment else "",
    )


def init_app(app) -> None:
    app.register_blueprint(bp)
