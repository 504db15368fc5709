"""The printable month statement (月结报表): /committee/month-close/<community_code>/<YYYY-MM>.

Staff of the community (committee, supervisor, ...) and admins, logged in with a page session.
Minimal, clean HTML meant for printing and pinning on the notice board.
"""

from __future__ import annotations

from flask import Blueprint, render_template_string
from flask_login import current_user

from timebank.audit.month_close import describe
from timebank.core.clock import parse_month
from timebank.core.errors import Unauthenticated
from timebank.core.policy import require_community
from timebank.people.operations import community_by_code

bp = Blueprint("month_close_page", __name__)

_PAGE = ("""<!doctype html><html lang="zh-CN"><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>月结 {{ c.name }} {{ d.month }}</title>
<style>
 body { font: 16px/1.5 sans-serif; max-width: 48em; margin: 2em auto; padding: 0 1em; color: #111 }
 table { border-collapse: collapse; width: 100%; margin: .5em 0 1.5em }
 th, td { border: 1px solid #999; padding: .25em .5em; text-align: left }
 td.n { text-align: right; font-variant-numeric: tabular-nums }
 .sig { font: 12px monospace; word-break: break-all }
 @media print { a { color: inherit; text-decoration: none } }
</style>
<h1>{{ c.name }} · {{ d.month }} 月结报表</h1>
<p>状态 Status: <strong>{{ {"closed": "已月结 closed",
 "pending_second": "待第二人签署 pending second sign-off", "open": "未月结 open"}[d.status] }}</strong></p>
{% if d.signoffs %}<p>签署 Signed off by:
 {% for s in d.signoffs %}{{ s.username }} ({{ s.signed_at.strftime("%Y-%m-%d %H:%M") }} UTC)
 {%- if not loop.last %}, {% endif %}{% endfor %}</p>{% endif %}
{% set st = d.statement or d.preview %}
{% if not d.statement %}<p><em>预览（未签署）Preview, not signed.</em></p>{% endif %}
<p>期间 Period: {{ st.period.start }} — {{ st.period.end }} · 交易笔数 Transactions: {{ st.transactions }}</p>
<h2>积分 Points</h2>
<table>
<tr><th>发放 Issued</th><td></td></tr>
{% for cat, n in st.points.issued_by_category.items() %}
<tr><td>&nbsp;&nbsp;{{ cat }}</td><td class="n">{{ n }}</td></tr>{% endfor %}
<tr><td>发放合计 Issued total</td><td class="n">{{ st.points.issued_total }}</td></tr>
<tr><td>兑换 Redeemed</td><td class="n">{{ st.points.redeemed }}</td></tr>
<tr><td>撤销退回 Voided / returned</td><td class="n">{{ st.points.voided }}</td></tr>
<tr><td>过期 Expired</td><td class="n">{{ st.points.expired }}</td></tr>
<tr><td>月末结余 Outstanding at month end</td><td class="n">{{ st.points.outstanding }}</td></tr>
</table>
<h2>时间银行 Time bank (分钟 minutes)</h2>
<table>
<tr><td>存入 Deposited</td><td class="n">{{ st.hours.deposited_minutes }}</td></tr>
<tr><td>支取 Withdrawn</td><td class="n">{{ st.hours.withdrawn_minutes }}</td></tr>
<tr><td>新增发放 Minted</td><td class="n">{{ st.hours.minted_minutes }}</td></tr>
<tr><td>公共池 Pool balance</td><td class="n">{{ st.hours.pool_balance_minutes }}</td></tr>
<tr><td>月末结余 Outstanding</td><td class="n">{{ st.hours.outstanding_minutes }}</td></tr>
</table>
{% if st.stock is not none %}<h2>库存 Stock</h2>
<table><tr><th>SKU</th><th>品名 Item</th><th>期初 Opening</th><th>入库 In</th><th>出库 Out</th>
<th>期末 Closing</th></tr>
{% for s in st.stock %}<tr><td>{{ s.sku or "" }}</td><td>{{ s.name or s.item_id }}</td>"""
         """<td class="n">{{ s.opening }}</td>
<td class="n">{{ s.received }}</td><td class="n">{{ s.issued }}</td><td class="n">{{ s.closing }}</td></tr>{% endfor %}
</table>{% endif %}
{% if d.statement %}<h2>签名 Signature</h2>
<p>账本 Ledger: tree size {{ st.ledger.tree_size }}, root <span class="sig">{{ st.ledger.root_hash }}</span></p>
<p>Ed25519 key <code>{{ d.key_id }}</code>; signature over the statement's JSON bytes:</p>
<p class="sig">{{ d.signature }}</p>
<p>The signed JSON is served by <code>GET /api/v1/month-closes/{{ c.code }}/{{ d.month }}</code>
(<code>statement_text</code>); see docs/verify.md.</p>{% endif %}
</html>""")


@bp.get("/committee/month-close/<community_code>/<month>")
def month_close_page(community_code: str, month: str):
    if not current_user.is_authenticated:
        raise Unauthenticated("Log in to see the month statement.")
    community = community_by_code(community_code)
    require_community(current_user, community.id)
    parse_month(month)
    return render_template_string(_PAGE, c=community, d=describe(community, month))


def init_app(app) -> None:
    if "month_close_page" not in app.blueprints:
        app.register_blueprint(bp)
