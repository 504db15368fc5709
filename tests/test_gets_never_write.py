"""GET requests never write (contract v1.1, "Faults").

Every GET route of the app's URL map is called with GET and with HEAD, pages included, as anonymous,
as a resident, a grid worker, a clerk, a committee member, a supervisor and an admin, with the export
formats and the proofs, in a community that has households, residents, claims (pending, publicized,
posted), a task, goods, a donation, a sale and a help request; once before the first checkpoint (no
signing key yet) and once after a checkpoint, a closed month and more transactions than the
checkpoint covers. Nothing may be written.

What counts as a write, and how it is seen:

* every statement SQLAlchemy sends (``before_cursor_execute`` on the app's engine) that is not a
  read: anything but SELECT, PRAGMA, SHOW, SET, BEGIN, COMMIT, ROLLBACK, SAVEPOINT and RELEASE; a
  WITH counts as a write unless it is a pure select; SELECT ... FOR UPDATE/SHARE counts too (a read
  only transaction refuses it);
* the hot paths (the ledger, the audit log, the till) run SQL on the driver's own cursor, which
  SQLAlchemy's events do not see. So, on SQLite, every connection's trace callback reports each
  statement SQLite runs; on PostgreSQL, every transaction is asked at its end whether it was given
  a transaction id (``pg_current_xact_id_if_assigned()``), which happens at its first write;
* and the whole database is compared before and after.

A route whose path parameter this test does not know fails the test (a route skipped in silence
would make it useless), and so does a route that no role could read (then it exercised nothing).
"""

from __future__ import annotations

import itertools
import re
from datetime import timedelta
from urllib.parse import urlparse

import pytest
from sqlalchemy import event, inspect, text

from conftest import IS_POSTGRES
from earning_support import PASSWORD, build_town, claim, rule
from timebank.core.extensions import db

READS = ("SELECT", "PRAGMA", "SHOW", "SET", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
_COMMENT = re.compile(r"(--[^\n]*\n)|(/\*.*?\*/)", re.S)


def is_write(statement: str) -> bool:
    sql = _COMMENT.sub(" ", statement).strip().upper()
    if re.search(r"\bFOR\s+(UPDATE|SHARE|NO\s+KEY\s+UPDATE|KEY\s+SHARE)\b", sql):
        return True
    if sql.startswith("WITH"):
        return bool(re.search(r"\b(INSERT|UPDATE|DELETE|MERGE|CREATE|DROP|ALTER|TRUNCATE)\b", sql))
    return not sql.startswith(READS)


def test_what_counts_as_a_write():
    for sql in ("SELECT 1", "  select * from x", "PRAGMA foreign_keys", "BEGIN IMMEDIATE", "SAVEPOINT sa_1",
                "RELEASE SAVEPOINT sa_1", "SET TRANSACTION READ ONLY", "WITH a AS (SELECT 1) SELECT * FROM a",
                "/* c */ SELECT 1"):
        assert not is_write(sql), sql
    for sql in ("INSERT INTO t VALUES (1)", "update t set a = 1", "DELETE FROM t", "CREATE TABLE t (a int)",
                "WITH a AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM a",
                "SELECT * FROM t FOR UPDATE", "-- TRIGGER refuse_update", "REPLACE INTO t VALUES (1)"):
        assert is_write(sql), sql


# --------------------------------------------------------------------------------------------------
# The world
# --------------------------------------------------------------------------------------------------


def build_world(world, clock) -> dict:
    """hongxing with everything a GET route can name; no checkpoint and no month close yet."""
    t = build_town(world)
    ids: dict = {"town": t}
    ids["rule"] = rule(world, "clean", title="清扫楼道", points=10, publicity_days=3)["id"]
    rule(world, "quick", title="门前三包", points=4, review="auto", publicity_days=0)
    publicized = claim(world, t.r1, t.resident1)
    r = world.call("POST", f"/api/v1/claims/{publicized['id']}/approve", "committee")
    assert r.status_code == 200 and r.get_json()["status"] == "publicized", r.get_json()
    ids["claim"] = publicized["id"]
    ids["pending_claim"] = claim(world, t.r2, t.resident2)["id"]
    claim(world, t.r1b, t.resident1b, rule_code="quick")

    r = world.call("POST", "/api/v1/tasks", "committee", json={
        "community_code": "hongxing", "rule_code": "clean", "title": "周六清扫槐树街",
        "starts_at": clock.now().isoformat(), "ends_at": (clock.now() + timedelta(hours=2)).isoformat(),
        "slots": 5})
    assert r.status_code == 201, r.get_json()
    ids["task"] = r.get_json()["id"]
    r = world.call("GET", f"/api/v1/tasks/{ids['task']}/checkin-code", "committee")
    assert r.status_code == 200, r.get_json()
    ids["checkin_query"] = urlparse(r.get_json()["url"]).query

    r = world.call("POST", "/api/v1/items", "clerk", json={
        "community_code": "hongxing", "sku": "soap", "name": "香皂", "price_points": 3, "barcode": "6901111000011"})
    assert r.status_code == 201, r.get_json()
    ids["item"] = r.get_json()["id"]
    r = world.call("POST", "/api/v1/stock-movements", "clerk", json={
        "item_id": ids["item"], "quantity": 20, "reason": "donation", "donor": "华联超市", "donor_kind": "enterprise"})
    assert r.status_code == 201, r.get_json()
    ids["donation"] = r.get_json()["id"]
    world.grant(t.h1, 100)
    with world.app.app_context():
        from timebank.people.models import Household

        card = db.session.get(Household, t.h1).member_code
    r = world.call("POST", "/api/v1/redemptions", "clerk",
                   json={"member_code": card, "lines": [{"item_id": ids["item"], "quantity": 2}]},
                   headers={"Idempotency-Key": "gets-never-write-1"})
    assert r.status_code == 201, r.get_json()
    ids["redemption"] = r.get_json()["id"]
    with world.app.app_context():  # a photo of the goods, for its address
        from shop_support import png_bytes
        from timebank.core.users import User
        from timebank.shop import photos
        from timebank.shop.models import Item

        clerk = db.session.execute(db.select(User).where(User.username == "clerk")).scalar_one()
        photos.set_photo(db.session.get(Item, ids["item"]), clerk, png_bytes())
        db.session.commit()

    # A partner shop (爱心商家) with its clerk, a haircut there with places a day, and a sale of it.
    r = world.call("POST", "/api/v1/partners", "committee", json={"community_code": "hongxing", "name": "幸福理发店",
                                                                  "address": "幸福路18号"})
    assert r.status_code == 201, r.get_json()
    ids["partner"] = r.get_json()["id"]
    world.user("barber", "clerk", password=PASSWORD)
    r = world.call("POST", f"/api/v1/partners/{ids['partner']}/clerks", "committee", json={"username": "barber"})
    assert r.status_code == 201, r.get_json()
    r = world.call("POST", "/api/v1/items", "committee", json={
        "community_code": "hongxing", "sku": "haircut", "name": "理发", "price_points": 8, "kind": "service",
        "daily_places": 6, "partner_id": ids["partner"]})
    assert r.status_code == 201, r.get_json()
    ids["service"] = r.get_json()["id"]
    r = world.call("POST", "/api/v1/redemptions", "barber",
                   json={"member_code": card, "lines": [{"item_id": ids["service"], "quantity": 1}]})
    assert r.status_code == 201, r.get_json()

    r = world.call("POST", "/api/v1/help-requests", t.resident1,
                   json={"resident_id": t.r1, "title": "陪同去医院", "minutes": 30})
    assert r.status_code == 201, r.get_json()
    ids["help_request"] = r.get_json()["id"]
    ids["household"], ids["resident"] = t.h1, t.r1
    ids["card"] = card
    r = world.call("POST", "/api/v1/me/pay-code", t.resident1)
    assert r.status_code == 201, r.get_json()
    ids["pay_code"], ids["short_code"] = r.get_json()["id"], r.get_json()["short_code"]

    # An honour held, one on the notice board; a deduction applied, one on the notice board.
    r = world.call("POST", "/api/v1/honours", "committee", json={
        "community_code": "hongxing", "code": "civilized", "title": "文明家庭", "points": 20, "publicity_days": 0})
    assert r.status_code == 201, r.get_json()
    ids["honour"] = r.get_json()["id"]
    r = world.call("POST", "/api/v1/deduction-items", "committee", json={
        "community_code": "hongxing", "code": "litter", "title": "乱倒垃圾", "points": -5, "publicity_days": 0})
    assert r.status_code == 201, r.get_json()
    ids["deduction_item"] = r.get_json()["id"]
    for kind, body, terms in (("honour-awards", {"honour_code": "civilized"}, f"honours/{ids['honour']}"),
                              ("deductions", {"item_code": "litter"}, f"deduction-items/{ids['deduction_item']}")):
        for household in (t.h1, t.h2):  # the first at once, the second onto the notice board
            made = world.call("POST", f"/api/v1/{kind}", "grid", json={
                "community_code": "hongxing", "household_id": household, **body}).get_json()["id"]
            assert world.call("POST", f"/api/v1/{kind}/{made}/approve", "committee").status_code == 200
            assert world.call("PATCH", f"/api/v1/{terms}", "committee", json={"publicity_days": 3}).status_code == 200
        ids[kind] = made
    r = world.call("PUT", "/api/v1/ranking-settings/hongxing", "committee", json={"publish_black_list": True})
    assert r.status_code == 200, r.get_json()

    # A background export of the ledger (后台导出), written (the tests' config starts no process), so that
    # its page shows the download and its file can be fetched.
    r = world.call("POST", "/api/v1/ledger/transactions/exports", "committee",
                   json={"community_code": "hongxing", "format": "xlsx"})
    assert r.status_code == 202, r.get_json()
    ids["export_run"] = r.get_json()["id"]
    with world.app.app_context():
        from timebank.audit import export_runs

        assert export_runs.run(ids["export_run"]) == "done"
    return ids


def add_checkpoint_and_close(world, clock, ids) -> None:
    """A checkpoint, a closed month (2026-02), then more transactions than the checkpoint covers, so
    that proofs at the ledger's current size need Merkle nodes nobody has cached yet."""
    for _ in range(20):
        world.grant(ids["town"].h2, 1)
    r = world.call("POST", "/api/v1/ledger/checkpoints", "committee")
    assert r.status_code == 201, r.get_json()
    ids["checkpoint_size"] = r.get_json()["tree_size"]
    for who in ("committee", "committee_h1"):
        r = world.call("POST", "/api/v1/month-closes", who, json={"community_code": "hongxing", "month": "2026-02"})
        assert r.status_code in (200, 201), r.get_json()
    assert r.get_json()["status"] == "closed", r.get_json()
    for _ in range(40):
        world.grant(ids["town"].h2, 1)
    add_voucher(world, ids)
    with world.app.app_context():
        from ledger.tree import ledger_size

        ids["size"] = ledger_size(db.session)
    assert ids["size"] >= ids["checkpoint_size"] + 40


def add_voucher(world, ids) -> None:
    """An hour voucher to another deployment (docs/federation.md), after the first checkpoint (issuing
    signs with the deployment's key)."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    import ledger
    from ledger import checkpoint as notes
    from timebank.core import accounts
    from timebank.people.operations import community_by_code

    public = base64.b64encode(notes.raw_public_key(Ed25519PrivateKey.generate())).decode()
    r = world.call("POST", "/api/v1/federation/issuers", "admin",
                   json={"origin": "qilin.example.org/timebank", "public_key": public})
    assert r.status_code == 201, r.get_json()
    with world.app.app_context():
        community_id = community_by_code("hongxing").id
        ledger.post(db.session, [ledger.Leg(accounts.issuance_minutes(community_id), -60),
                                 ledger.Leg(accounts.resident_minutes(ids["resident"]), 60)],
                    kind="grant", category="time_bank", memo="test set-up", actor="test")
        db.session.commit()
    r = world.call("POST", "/api/v1/hours/vouchers", ids["town"].resident1,
                   json={"resident_id": ids["resident"], "minutes": 30})
    assert r.status_code == 201, r.get_json()
    ids["voucher"] = r.get_json()["voucher_id"]


# --------------------------------------------------------------------------------------------------
# The requests
# --------------------------------------------------------------------------------------------------

#: Values of path parameters: by (endpoint, parameter), else by parameter. A function of ``ids``.
PATH_BY_ENDPOINT = {
    ("swagger_ui_file", "filename"): lambda ids: ["swagger-ui.css"],
    ("web.set_language", "code"): lambda ids: ["en"],
    ("people.CommunityOne", "code"): lambda ids: ["hongxing"],
}
PATH = {
    "community_code": lambda ids: ["hongxing"],
    "claim_id": lambda ids: [ids["claim"], ids["pending_claim"]],
    "donation_id": lambda ids: [ids["donation"]],
    "help_request_id": lambda ids: [ids["help_request"]],
    "household_id": lambda ids: [ids["household"]],
    "item_id": lambda ids: [ids["item"]],
    "redemption_id": lambda ids: [ids["redemption"]],
    "resident_id": lambda ids: [ids["resident"]],
    "rule_id": lambda ids: [ids["rule"]],
    "task_id": lambda ids: [ids["task"]],
    "honour_id": lambda ids: [ids["honour"]],
    "award_id": lambda ids: [ids["honour-awards"]],
    "deduction_item_id": lambda ids: [ids["deduction_item"]],
    "deduction_id": lambda ids: [ids["deductions"]],
    "transaction_id": lambda ids: [1, ids.get("size", 1)],
    "month": lambda ids: ["2026-02", "2026-03"],
    "fmt": lambda ids: ["csv", "xlsx"],
    "filename": lambda ids: ["site.css"],
    "voucher_id": lambda ids: [ids.get("voucher", "0" * 32)],
    "run_id": lambda ids: [ids["export_run"]],
}


def _sizes(ids):
    size, cp = ids.get("size"), ids.get("checkpoint_size")
    return [s for s in (cp, size) if s]


#: Query strings per endpoint (every route is also called without one).
QUERIES = {
    "audit.InclusionProof": lambda ids: [f"tree_size={s}" for s in _sizes(ids)],
    "audit.ConsistencyProof": lambda ids: ["first=1&second=2"] + [f"first={a}&second={b}" for a in (1, 17)
                                                                  for b in _sizes(ids)],
    "audit.TreeHead": lambda ids: [f"tree_size={s}" for s in _sizes(ids)],
    "reports.LedgerExport": lambda ids: ["format=csv", "format=xlsx", "format=csv&community_code=hongxing",
                                         "format=xlsx&category=volunteer"],
    "reports.MonthlyReport": lambda ids: [f"community_code=hongxing&month={m}&format={f}"
                                          for m in ("2026-02", "2026-03") for f in ("json", "csv", "xlsx")],
    "reports.Anomalies": lambda ids: ["community_code=hongxing"],
    "audit.AuditLog": lambda ids: ["community_code=hongxing", "action=checkpoint.create"],
    "audit.MonthCloses": lambda ids: ["community_code=hongxing"],
    "ledger.Transactions": lambda ids: ["community_code=hongxing", f"household_id={ids['household']}"],
    "web_books.ledger": lambda ids: ["category=volunteer", f"household={ids['household']}"],
    "web_books.ledger_export": lambda ids: ["category=volunteer"],
    "web_reports.reports": lambda ids: ["month=2026-02", "month=2026-03"],
    "web_reports.anomalies": lambda ids: ["since=2026-02-01&until=2026-03-03"],
    "web_committee.claims": lambda ids: ["status=publicized", "status=pending"],
    "reports.Rankings": lambda ids: ["community_code=hongxing", "community_code=hongxing&month=2026-02"],
    "reports.HouseholdRanking": lambda ids: ["month=2026-02"],
    "web_people.households": lambda ids: ["q=张"],
    "web_people.cards": lambda ids: ["grid=1", "grid=1&per=person", "per=person&all=1"],
    "web_serve.desk": lambda ids: [f"card={ids['card']}", f"card={ids['card']}&resident={ids['resident']}",
                                   "card=13800000001", "card=NOSUCHCARD"],
    "web_resident.pay_code_status": lambda ids: [f"id={ids['pay_code']}"],
    "web_clerk.pos": lambda ids: [f"member={ids['short_code']}", f"member={ids['card']}"],
    "checkin.checkin": lambda ids: [ids["checkin_query"], "token=not-a-token"],
    "audit.HouseholdStatement": lambda ids: ["month=2026-02", "month=2026-03"],
    "web_statement.household_statement": lambda ids: ["month=2026-02", "month=2026-03"],
    "web_statement.my_statement": lambda ids: ["month=2026-02", "month=2026-03"],
    "federation.Clearing": lambda ids: ["origin=qilin.example.org/timebank"],
    "federation.Statement": lambda ids: ["origin=qilin.example.org/timebank"],
    "shop.StockReport": lambda ids: [f"community_code=hongxing&month=2026-03&format={f}" for f in ("json", "csv")],
    "shop.PartnerSettlement": lambda ids: [f"community_code=hongxing&month=2026-03&format={f}"
                                           for f in ("json", "csv")],
    "web_partners.settlement": lambda ids: ["month=2026-02", "month=2026-03"],
    "web_partners.settlement_export": lambda ids: ["month=2026-03"],
}
#: API list routes answer for a community named in the query.
COMMUNITY_QUERY = "community_code=hongxing"

#: Routes that no role reads with 2xx, and why (each still must not write).
NO_SUCCESS_EXPECTED = {
    "/lang/<code>": "sets the language in the session and redirects back",
    "/committee/anomaly-flags": "an old address: redirects to /committee/anomalies",
}

ROLES = ("anonymous", "13800000001", "grid", "clerk", "committee", "super", "admin")


def requests_for(app, ids):
    """``(rule, url)`` for every GET route, with every path value and query variant."""
    unknown = []
    for rule_ in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if "GET" not in (rule_.methods or ()):
            continue
        values = []
        for name in rule_.arguments:
            fill = PATH_BY_ENDPOINT.get((rule_.endpoint, name)) or PATH.get(name)
            if fill is None:
                unknown.append(f"{rule_.rule} ({rule_.endpoint}): path parameter {name!r}")
                continue
            values.append([(name, v) for v in fill(ids)])
        queries = [""] + QUERIES.get(rule_.endpoint, lambda ids: [])(ids)
        if rule_.rule.startswith("/api/") and not rule_.arguments and rule_.endpoint not in QUERIES:
            queries.append(COMMUNITY_QUERY)
        for combination in itertools.product(*values):
            with app.test_request_context():
                path = app.url_for(rule_.endpoint, **dict(combination))
            for query in queries:
                yield rule_.rule, path + ("?" + query if query else "")
    assert not unknown, "GET routes this test cannot fill (teach it their parameters):\n" + "\n".join(unknown)


# --------------------------------------------------------------------------------------------------
# Watching the database
# --------------------------------------------------------------------------------------------------


class WriteWatch:
    """Collects every write made on the app's engine while ``label`` names the request under way."""

    def __init__(self, app):
        self.app = app
        self.label = "(set-up)"
        self.writes: list[str] = []
        self.statements = 0

    def note(self, what: str) -> None:
        self.writes.append(f"{self.label}: {what}")

    # SQLAlchemy's statements
    def before_cursor_execute(self, conn, cursor, statement, parameters, context, executemany):
        self.statements += 1
        if is_write(statement):
            self.note(" ".join(statement.split())[:200])

    # SQLite: every statement SQLite runs, the driver cursor's included
    def trace(self, statement: str) -> None:
        if is_write(statement):
            self.note("(sqlite) " + " ".join(statement.split())[:200])

    def on_connect(self, dbapi_connection, _record):
        if hasattr(dbapi_connection, "set_trace_callback"):
            dbapi_connection.set_trace_callback(self.trace)

    # PostgreSQL: did the transaction that ends now write anything?
    def _xid_check(self, dbapi_connection, when: str) -> None:
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT pg_current_xact_id_if_assigned()")
            (xid,) = cursor.fetchone()
            cursor.close()
        except Exception:  # an aborted transaction: its statements were seen above
            return
        if xid is not None:
            self.note(f"(postgresql) the transaction ending in {when} wrote (xid {xid})")

    def on_commit(self, conn):
        self._xid_check(conn.connection.dbapi_connection, "COMMIT")

    def on_rollback(self, conn):
        self._xid_check(conn.connection.dbapi_connection, "ROLLBACK")

    def on_reset(self, dbapi_connection, connection_record, reset_state):
        self._xid_check(dbapi_connection, "the pool's reset")

    def __enter__(self):
        with self.app.app_context():
            engine = db.engine
            engine.dispose()  # connections opened from now on get the trace callback
            self.engine = engine
        event.listen(engine, "before_cursor_execute", self.before_cursor_execute)
        if IS_POSTGRES:
            event.listen(engine, "commit", self.on_commit)
            event.listen(engine, "rollback", self.on_rollback)
            event.listen(engine, "reset", self.on_reset)
        else:
            event.listen(engine, "connect", self.on_connect)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self.before_cursor_execute)
        if IS_POSTGRES:
            event.remove(self.engine, "commit", self.on_commit)
            event.remove(self.engine, "rollback", self.on_rollback)
            event.remove(self.engine, "reset", self.on_reset)
        else:
            event.remove(self.engine, "connect", self.on_connect)
        self.engine.dispose()


def snapshot(app) -> dict:
    """Every row of every table, sorted: what a committed write would change."""
    with app.app_context():
        out = {}
        with db.engine.connect() as conn:
            for table in sorted(inspect(conn).get_table_names()):
                rows = conn.execute(text(f'SELECT * FROM "{table}"')).all()
                out[table] = sorted(repr(tuple(r)) for r in rows)
        return out


def _diff(before: dict, after: dict) -> list[str]:
    out = []
    for table in sorted(set(before) | set(after)):
        old, new = set(before.get(table, [])), set(after.get(table, []))
        if old != new:
            out.append(f"{table}: +{sorted(new - old)[:3]} -{sorted(old - new)[:3]}")
    return out


def clients(app, world):
    """A test client per role: staff and residents logged in to the pages, with a bearer token for the
    API. Logging in writes (the audit log's ``auth.login``), so it happens before the watch."""
    out = {}
    for role in ROLES:
        client = app.test_client()
        headers = {}
        if role != "anonymous":
            r = client.post("/login", data={"username": role, "password": PASSWORD})
            assert r.status_code == 302, (role, r.status_code)
            headers = {"Authorization": f"Bearer {world.token(role)}"}
        out[role] = (client, headers)
    return out


def sweep(app, world, ids) -> tuple[list[str], dict]:
    """Every GET of :func:`requests_for` by every role. Returns the writes seen and, per route, the
    statuses it answered."""
    requests = list(requests_for(app, ids))
    by_role = clients(app, world)
    statuses: dict[str, set[int]] = {}
    before = snapshot(app)
    with WriteWatch(app) as watch:
        for role, (client, headers) in by_role.items():
            for rule_, url in requests:
                watch.label = f"GET {url} as {role}"
                r = client.get(url, headers=headers if url.startswith("/api/") else {})
                r.get_data()  # a streamed body is read here, after the request's commit
                r.close()
                statuses.setdefault(rule_, set()).add(r.status_code)
                assert r.status_code < 500, (watch.label, r.status_code, r.get_data(as_text=True)[:500])
            for _rule, url in requests:  # HEAD runs the GET view, but request.method says HEAD
                watch.label = f"HEAD {url} as {role}"
                client.head(url, headers=headers if url.startswith("/api/") else {}).close()
        assert watch.statements > len(requests), "the listener saw nothing: is it on the app's engine?"
    writes = list(watch.writes)
    writes += [f"(database changed) {d}" for d in _diff(before, snapshot(app))]
    return writes, statuses


def _report(writes):
    seen, lines = set(), []
    for w in writes:
        if w not in seen:
            seen.add(w)
            lines.append(w)
    return f"{len(lines)} writes in GET requests:\n" + "\n".join(lines[:80])


@pytest.mark.slow
def test_get_requests_never_write(app, world, clock):
    ids = build_world(world, clock)
    # Before the first checkpoint: nothing signed yet, and no signing key in this instance.
    before_checkpoint, _ = sweep(app, world, ids)
    add_checkpoint_and_close(world, clock, ids)
    after_checkpoint, statuses = sweep(app, world, ids)
    writes = [f"[before the first checkpoint] {w}" for w in before_checkpoint] + after_checkpoint
    assert not writes, _report(writes)

    unread = {rule_: sorted(codes) for rule_, codes in statuses.items()
              if not any(200 <= c < 300 for c in codes) and rule_ not in NO_SUCCESS_EXPECTED}
    assert not unread, f"routes no role could read (fix the world or the query, or say why): {unread}"
