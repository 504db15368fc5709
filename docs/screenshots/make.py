"""Take the screenshots in docs/screenshots/ of the main pages at phone and desktop widths.

    .venv/bin/python docs/screenshots/make.py

Loads the demo community (``timebank demo``) into a throw-away SQLite database, serves the app on a
free local port, and drives Debian's Chromium (``/usr/bin/chromium``; Playwright never downloads a
browser) through the pages as a demo resident. Chinese text needs ``fonts-noto-cjk``.
Pages of later features can be added to ``SHOTS`` (path, file name, login).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1366, "height": 900}}

#: (path, file name stem, who is logged in: "resident" or a demo staff username or None).
SHOTS = [
    ("/login", "login", None),
    ("/me/", "resident-home", "resident"),
    ("/me/pay-code", "resident-pay-code", "resident"),
    ("/me/card", "resident-card", "resident"),
    ("/me/history", "resident-history", "resident"),
    ("/me/claims", "resident-claims", "resident"),
    ("/me/help", "resident-help", "resident"),
    ("/me/gift", "resident-gift", "resident"),
    ("/me/shop", "resident-shop", "resident"),
    ("{checkin}", "resident-checkin", "resident"),
    ("{pos}", "clerk-pos", "demo_clerk"),
    ("/clerk/stock", "clerk-stock", "demo_clerk"),
    ("/committee/claims", "committee-claims", "demo_committee"),
    ("{task_qr}", "committee-task-qr", "demo_committee"),
    ("/committee/households/cards?grid={grid}", "committee-cards", "demo_committee"),
    ("/committee/ledger", "committee-ledger", "demo_committee"),
    ("/committee/reports", "committee-reports", "demo_committee"),
    ("/me/tasks", "resident-tasks", "resident"),
    ("/me/notices", "resident-notices", "resident"),
    ("/me/statement", "resident-statement", "resident"),
    ("/public/{community}", "public-board", None),
    ("/committee/serve", "committee-serve", "demo_committee"),
    ("/committee/claims/search", "committee-claim-search", "demo_committee"),
    ("/committee/tasks", "committee-tasks", "demo_committee"),
    ("/committee/honours", "committee-honours", "demo_committee"),
    ("/committee/deductions", "committee-deductions", "demo_committee"),
    ("/committee/notices", "committee-notices", "demo_committee"),
    ("/committee/vouchers", "committee-vouchers", "demo_committee"),
    ("/clerk/goods", "clerk-goods", "demo_clerk"),
    ("/clerk/receipts", "clerk-receipts", "demo_clerk"),
]


def build_app(folder: str):
    from timebank import create_app

    app = create_app({"INSTANCE_PATH": folder, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/demo.sqlite",
                      "RATELIMIT_ENABLED": False})
    with app.app_context():
        from timebank.cli import init_db

        init_db()
    result = app.test_cli_runner().invoke(args=["demo"])
    if result.exit_code != 0:
        raise SystemExit(result.output)
    return app


def pick_resident(app) -> tuple[str, str]:
    """The demo resident whose household has the most points (the home page is then not empty)."""
    from sqlalchemy import select

    import ledger
    from timebank.core import accounts
    from timebank.core.extensions import db
    from timebank.core.users import User
    from timebank.demo import DEMO_PASSWORD

    with app.app_context():
        users = db.session.execute(select(User).where(User.role == "resident")).scalars().all()
        best = max(users, key=lambda u: (ledger.balance(db.session, accounts.household_points(u.household_id)),
                                         -u.id))
        return best.username, DEMO_PASSWORD


def checkin_path(app, base_url: str) -> str:
    """A task open now, and its check-in URL (the page a resident's camera opens)."""
    from sqlalchemy import select

    from timebank.core.clock import utc_naive
    from timebank.core.extensions import db
    from timebank.core.users import User
    from timebank.demo import DEMO_CODE
    from timebank.earning import tasks
    from timebank.earning.models import Rule
    from timebank.people.operations import community_by_code

    app.config["TIMEBANK_BASE_URL"] = base_url
    with app.app_context():
        community = community_by_code(DEMO_CODE)
        committee = db.session.execute(select(User).where(User.username == "demo_committee")).scalar_one()
        rule = db.session.execute(select(Rule).where(Rule.community_id == community.id)
                                  .order_by(Rule.id)).scalars().first()
        moment = utc_naive()
        task = tasks.create_task(committee, community, rule.code, "清扫幸福里小广场", moment - timedelta(minutes=10),
                                 moment + timedelta(hours=2), 30)
        code = tasks.checkin_code(committee, task)
        db.session.commit()
        return code["url"][len(base_url):], task.id


def staff_paths(app) -> dict:
    """The till with a household and two goods in the basket, a grid for the card sheet."""
    from urllib.parse import urlencode

    from sqlalchemy import select

    import ledger
    from timebank.core import accounts
    from timebank.core.extensions import db
    from timebank.demo import DEMO_CODE
    from timebank.people.models import Household
    from timebank.people.operations import community_by_code
    from timebank.shop.models import Item

    with app.app_context():
        community = community_by_code(DEMO_CODE)
        homes = db.session.execute(select(Household).where(Household.community_id == community.id)
                                   .order_by(Household.id)).scalars().all()
        home = max(homes, key=lambda h: ledger.balance(db.session, accounts.household_points(h.id)))
        goods = db.session.execute(select(Item).where(Item.community_id == community.id, Item.on_hand > 2)
                                   .order_by(Item.price_points)).scalars().all()[:2]
        items = [goods[0].id, goods[0].id, goods[-1].id] if goods else []
        grid = next((h.grid for h in homes if h.grid), "")
        return {"pos": "/clerk/pos?" + urlencode([("member", home.member_code)] + [("item", i) for i in items]),
                "grid": grid}


def main() -> None:
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    if not os.path.exists(CHROMIUM):
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium fonts-noto-cjk")
    folder = tempfile.mkdtemp(prefix="timebank-shots-")
    app = build_app(folder)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    username, password = pick_resident(app)
    checkin, task_id = checkin_path(app, base)
    from timebank.demo import DEMO_CODE

    places = {"checkin": checkin, "task_qr": f"/committee/tasks/{task_id}/qr", "community": DEMO_CODE,
              **staff_paths(app)}
    problems = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for width_name, viewport in VIEWPORTS.items():
                context = browser.new_context(viewport=viewport, locale="zh-CN", device_scale_factor=1)
                page = context.new_page()
                page.on("console", lambda m: m.type == "error" and problems.append(m.text))
                page.on("pageerror", lambda e: problems.append(str(e)))
                logged_in = None
                for path, stem, who in SHOTS:
                    if who != logged_in:
                        page.context.clear_cookies()
                        if who is not None:
                            page.goto(base + "/login")
                            page.fill("#username", username if who == "resident" else who)
                            page.fill("#password", password)
                            page.click("form button[type=submit]")
                            page.wait_for_load_state("load")
                        logged_in = who
                    page.goto(base + path.format(**places))
                    page.wait_for_load_state("networkidle")
                    target = HERE / f"{stem}-{width_name}.png"
                    page.screenshot(path=str(target), full_page=width_name == "phone")
                    print(target.relative_to(ROOT))
                context.close()
            browser.close()
    finally:
        server.shutdown()
    if problems:
        raise SystemExit("browser console errors:\n" + "\n".join(problems))


if __name__ == "__main__":
    main()
