"""Hours between deployments (contract v1.1 "Across communities", docs/federation.md).

Two deployments, each its own app and its own database (two SQLite files; on PostgreSQL a second
database, ``TIMEBANK_TEST_DATABASE_URL_B`` or the first one's name with ``b`` added): 红星 at home
issues a voucher, 麒麟 redeems it once; a replay, a copy, a forgery, an unknown issuer, a voucher
for someone else and an expired one are refused; an expired or cancelled voucher's minutes go
back; the clearing reports of both sides agree; ``verify`` holds on both.

And the format itself: the worked example of docs/federation.md is what the code writes, byte for
byte, and the document's Python program and OpenSSL commands check it without this project's code.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

import ledger
from conftest import IS_POSTGRES, TEST_DB_URL, World, base_config
from ledger import checkpoint as notes
from timebank import create_app
from timebank.core import accounts
from timebank.core.extensions import db
from timebank.federation import voucher as fmt

DOC = Path(__file__).resolve().parents[1] / "docs" / "federation.md"
HOME, AWAY = "hongxing.example.org/timebank", "qilin.example.org/timebank"
PASSWORD = "secret-pass"
ALICE_PHONE, BOB_PHONE = "13800000001", "13800000002"


# --------------------------------------------------------------------------------------------------
# The format and the worked example
# --------------------------------------------------------------------------------------------------

RFC8032_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"


def _example_key():
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(RFC8032_SEED))


def _doc_block(kind: str) -> str:
    found = re.search(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert found, f"docs/federation.md has no {kind} block"
    return found.group(1)


def _example_voucher() -> str:
    issuer, voucher_id = HOME, "5f0c3a9e2b7d41c68a1e9d03b4f7c2a1"
    body = fmt.format_body(issuer, AWAY, voucher_id, fmt.holder_hash(issuer, voucher_id, "13800001234"), 120,
                           datetime(2026, 12, 3, 7, 30, tzinfo=UTC), datetime(2027, 3, 3, 7, 30, tzinfo=UTC))
    return fmt.sign(_example_key(), body)


def test_the_worked_example_is_what_the_code_writes():
    doc = DOC.read_text(encoding="utf-8")
    example = _example_voucher()
    assert _doc_block("text") == example
    assert f"({len(example.encode())} bytes)" in doc
    parsed = fmt.parse(example)
    public = notes.raw_public_key(_example_key())
    assert fmt.verify(parsed, public)
    # every number the document quotes
    for quoted in (public.hex(), base64.b64encode(public).decode(), parsed.holder, parsed.key_id.hex(),
                   parsed.signature.hex()):
        assert quoted in doc, quoted
    assert parsed.holder == fmt.holder_hash(HOME, parsed.id, "+86 138-0000-1234")


def test_the_documents_python_program_issues_and_checks_the_example_without_our_code(tmp_path):
    program = tmp_path / "voucher_example.py"
    program.write_text(_doc_block("python"), encoding="utf-8")
    # -I: isolated, so the project is not importable; only the cryptography package is used
    out = subprocess.run([sys.executable, "-I", str(program)], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == _example_voucher()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")
def test_the_documents_openssl_commands_verify_the_example(tmp_path):
    (tmp_path / "voucher.txt").write_text(_example_voucher(), encoding="utf-8")
    out = subprocess.run(["sh", "-c", _doc_block("sh")], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0 and "Signature Verified Successfully" in out.stdout, out.stdout + out.stderr
    (tmp_path / "voucher.txt").write_text(_example_voucher().replace("minutes 120", "minutes 121"), encoding="utf-8")
    out = subprocess.run(["sh", "-c", _doc_block("sh")], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode != 0


def test_the_format_has_one_spelling():
    example = _example_voucher()
    assert fmt.canonical(fmt.parse(example)) == example
    # a paste from a web form: CR LF and white space around it are forgiven
    assert fmt.parse("\n  " + example.replace("\n", "\r\n") + "  \n").id == fmt.parse(example).id
    for bad in (example.replace("minutes 120", "minutes 0120"),
                example.replace("minutes 120", "minutes  120"),
                example.replace("timebank-voucher/v1", "timebank-voucher/v2"),
                example.replace("issued 2026-12-03T07:30:00Z", "issued 2026-12-03T07:30:00+00:00"),
                example.replace("issued 2026-12-03T07:30:00Z", "issued 2027-03-03T07:30:00Z"),
                example.replace("\u2014 hongxing.example.org/timebank", "\u2014 qilin.example.org/timebank"),
                example.replace("id 5f0c", "id 5F0C"),
                example.replace("\n\n", "\n"),
                example.rsplit("=", 1)[0] + "A=\n",
                "not a voucher"):
        with pytest.raises(fmt.VoucherFormatError):
            fmt.parse(bad)
    # the same key signs checkpoints: a voucher body is never a checkpoint body
    with pytest.raises(ValueError):
        notes.parse_checkpoint_body(fmt.parse(example).body())


# --------------------------------------------------------------------------------------------------
# Two deployments
# --------------------------------------------------------------------------------------------------

def _second_url() -> str:
    import os

    given = os.environ.get("TIMEBANK_TEST_DATABASE_URL_B")
    if given:
        return given
    url = make_url(TEST_DB_URL)
    return url.set(database=url.database + "b").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def second_template(template_db, tmp_path_factory):
    """The second deployment's database at the newest migration (PostgreSQL: once per session)."""
    if not IS_POSTGRES:
        return template_db
    url = _second_url()
    name = make_url(url).database
    maintenance = create_engine(TEST_DB_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with maintenance.connect() as conn:  # a fresh server (CI) has only the first database
        if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is None:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    maintenance.dispose()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    from timebank.cli import init_db

    app = create_app(base_config(tmp_path_factory.mktemp("pginstance_b"), url))
    with app.app_context():
        init_db()
        db.engine.dispose()
    return None


@pytest.fixture
def second_db_uri(second_template, tmp_path):
    if not IS_POSTGRES:
        target = tmp_path / "away.sqlite"
        shutil.copy(second_template, target)
        return f"sqlite:///{target}"
    url = _second_url()
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        tables = [r[0] for r in conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"))]
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.exec_driver_sql("; ".join(f'DELETE FROM "{t}"' for t in tables))
        conn.execute(text("SELECT setval(format('%I.%I', schemaname, sequencename), 1, false)"
                          " FROM pg_sequences WHERE schemaname = 'public'"))
    engine.dispose()
    return url


class Deployment(World):
    """One deployment: its own app, database, instance folder (signing key) and origin."""

    def __init__(self, uri, folder, origin, clock, code, name):
        app = create_app(base_config(folder, uri) | {"TIMEBANK_ORIGIN": origin})
        app.extensions["timebank.core.clock"] = clock
        super().__init__(app, app.test_client())
        self.origin = origin
        self.community(code, name)
        self.user("admin", "admin", community_code=None)
        self.user("committee", "committee", community_code=code)
        self.code = code
        with app.app_context():  # what `timebank init-db` does: the signing key
            from timebank.audit.checkpoints import ensure_signing_key

            ensure_signing_key()
            db.session.commit()

    def person(self, name, phone, minutes=0):
        household = self.household(self.code, name=f"{name}家")
        rid = self.resident(household, name, phone=phone, password=PASSWORD)
        if minutes:
            with self.app.app_context():
                from timebank.people.operations import community_by_code

                community_id = community_by_code(self.code).id
                ledger.post(db.session, [ledger.Leg(accounts.issuance_minutes(community_id), -minutes),
                                         ledger.Leg(accounts.resident_minutes(rid), minutes)],
                            kind="grant", category="time_bank", memo="test set-up", actor="test")
                db.session.commit()
        return rid

    def minutes(self, resident_id):
        return self.balance(accounts.resident_minutes(resident_id))

    def public_key(self):
        r = self.call("GET", "/api/v1/ledger/public-key")
        assert r.status_code == 200, r.get_json()
        return r.get_json()["public_key"]

    def trust(self, other):
        r = self.call("POST", "/api/v1/federation/issuers", "admin",
                      json={"origin": other.origin, "public_key": other.public_key()})
        assert r.status_code == 201, r.get_json()
        return r.get_json()

    def issue(self, username, resident_id, minutes, expect=201, **extra):
        r = self.call("POST", "/api/v1/hours/vouchers", username,
                      json={"resident_id": resident_id, "minutes": minutes, **extra})
        assert r.status_code == expect, r.get_json()
        return r.get_json()

    def redeem(self, username, voucher, resident_id, expect=201, headers=None):
        r = self.call("POST", "/api/v1/hours/vouchers/redeem", username,
                      json={"voucher": voucher, "resident_id": resident_id}, headers=headers)
        assert r.status_code == expect, r.get_json()
        return r.get_json()

    def clearing(self, **query):
        r = self.call("GET", "/api/v1/federation/clearing", "admin", query_string=query)
        assert r.status_code == 200, r.get_json()
        return {item["origin"]: item for item in r.get_json()["items"]}

    def verify(self):
        r = self.call("GET", "/api/v1/ledger/verify", "admin")
        assert r.status_code == 200 and r.get_json()["ok"], r.get_json()
        result = self.app.test_cli_runner().invoke(args=["verify"])  # `timebank verify`, with every hook
        assert result.exit_code == 0, result.output
        return r.get_json()

    def send_statement(self, other):
        """This deployment's signed statement of the vouchers of ``other`` it redeemed, taken in by ``other``."""
        r = self.call("GET", "/api/v1/federation/statement", "admin", query_string={"origin": other.origin})
        assert r.status_code == 200, r.get_json()
        taken = other.call("POST", "/api/v1/federation/statements", "admin", json=r.get_json())
        assert taken.status_code == 200, taken.get_json()
        return taken.get_json()

    def run_job(self, name):
        result = self.app.test_cli_runner().invoke(args=["jobs", "run", name])
        assert result.exit_code == 0, result.output
        return result.output

    def close(self):
        with self.app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def pair(db_uri, second_db_uri, tmp_path, clock):
    home = Deployment(db_uri, tmp_path / "home", HOME, clock, "hongxing", "红星社区")
    away = Deployment(second_db_uri, tmp_path / "away", AWAY, clock, "qilin", "麒麟社区")
    yield home, away
    home.close()
    away.close()


def later(pair, clock, **delta):
    """Move the clock for both; bearer tokens last 12 hours, so both log in again afterwards."""
    clock.advance(**delta)
    for deployment in pair:
        deployment._tokens.clear()


def _problem(r, status, code):
    assert r.status_code == status, r.get_json()
    assert r.get_json()["error"] == code, r.get_json()
    assert r.mimetype == "application/problem+json"


def test_a_voucher_travels_from_one_deployment_to_the_other_once(pair, clock):
    home, away = pair
    alice = home.person("张三", ALICE_PHONE, minutes=300)
    alice_away = away.person("张三", ALICE_PHONE)  # the summer visitor (候鸟), enrolled there too
    bob_away = away.person("李四", BOB_PHONE)

    # Nothing is trusted yet: no counterparty to issue to, and no issuer to accept.
    r = home.call("POST", "/api/v1/hours/vouchers", ALICE_PHONE, json={"resident_id": alice, "minutes": 60})
    _problem(r, 422, "validation_error")
    home.trust(away)
    away.trust(home)
    r = home.call("POST", "/api/v1/federation/issuers", "committee",
                  json={"origin": "x.example/tb", "public_key": away.public_key()})
    _problem(r, 403, "forbidden")
    r = home.call("POST", "/api/v1/federation/issuers", "admin",
                  json={"origin": AWAY, "public_key": away.public_key()})
    assert r.status_code == 200  # trusted already: the same row

    # Issue at home: the minutes leave Alice for the clearing account of 麒麟. A retry moves nothing.
    key = {"Idempotency-Key": "voucher-1"}
    r = home.call("POST", "/api/v1/hours/vouchers", ALICE_PHONE, json={"resident_id": alice, "minutes": 120},
                  headers=key)
    assert r.status_code == 201, r.get_json()
    issued = r.get_json()
    again = home.call("POST", "/api/v1/hours/vouchers", ALICE_PHONE, json={"resident_id": alice, "minutes": 120},
                      headers=key)
    assert again.status_code == 201 and again.get_json() == issued
    assert home.minutes(alice) == 180
    assert home.balance("federation:" + AWAY + ":minutes") == 120
    text_ = issued["voucher"]
    v = fmt.parse(text_)
    assert (v.issuer, v.audience, v.id, v.minutes) == (HOME, AWAY, issued["voucher_id"], 120)
    assert v.expires - v.issued == timedelta(days=90)
    assert v.holder == fmt.holder_hash(HOME, v.id, ALICE_PHONE) and ALICE_PHONE not in text_
    assert fmt.verify(v, base64.b64decode(home.public_key()))
    qr = home.call("GET", issued["qr_svg_url"], ALICE_PHONE)
    assert qr.status_code == 200 and qr.mimetype == "image/svg+xml" and b"<svg" in qr.data
    # Not more than she has.
    _problem(home.call("POST", "/api/v1/hours/vouchers", ALICE_PHONE,
                       json={"resident_id": alice, "minutes": 181}), 409, "insufficient_hours")
    # Somebody else's minutes: no.
    home.person("王五", "13800000005")
    _problem(home.call("POST", "/api/v1/hours/vouchers", "13800000005",
                       json={"resident_id": alice, "minutes": 10}), 403, "forbidden")

    # Redeem away: for somebody else, no; for Alice, once.
    _problem(away.call("POST", "/api/v1/hours/vouchers/redeem", "committee",
                       json={"voucher": text_, "resident_id": bob_away}), 422, "voucher_wrong_person")
    key = {"Idempotency-Key": "redeem-1"}
    done = away.redeem(ALICE_PHONE, text_.replace("\n", "\r\n"), alice_away, headers=key)
    assert (done["voucher_id"], done["issuer"], done["minutes"]) == (v.id, HOME, 120)
    assert away.minutes(alice_away) == 120
    assert away.redeem(ALICE_PHONE, text_.replace("\n", "\r\n"), alice_away, headers=key) == done  # sent again
    # Replayed, by anyone, in any form: refused.
    _problem(away.call("POST", "/api/v1/hours/vouchers/redeem", ALICE_PHONE,
                       json={"voucher": text_, "resident_id": alice_away}), 409, "voucher_used")
    _problem(away.call("POST", "/api/v1/hours/vouchers/redeem", "committee",
                       json={"voucher": "\n" + text_, "resident_id": alice_away}), 409, "voucher_used")
    assert away.minutes(alice_away) == 120

    # Changed, forged, addressed elsewhere, or from a deployment nobody trusted: refused.
    second = home.issue(ALICE_PHONE, alice, 30)["voucher"]
    _problem(away.call("POST", "/api/v1/hours/vouchers/redeem", ALICE_PHONE,
                       json={"voucher": second.replace("minutes 30", "minutes 300"), "resident_id": alice_away}),
             422, "voucher_invalid")
    _problem(away.call("POST", "/api/v1/hours/vouchers/redeem", ALICE_PHONE,
                       json={"voucher": "hello", "resident_id": alice_away}), 422, "voucher_invalid")
    stranger = Ed25519PrivateKey.generate()
    now = clock.now()

    def forged(issuer, audience, key_):
        vid = "ab" * 16
        return fmt.sign(key_, fmt.format_body(issuer, audience, vid, fmt.holder_hash(issuer, vid, ALICE_PHONE), 500,
                                              now, now + timedelta(days=5)))

    for voucher in (forged(HOME, AWAY, stranger), forged("nowhere.example/tb", AWAY, stranger)):
        _problem(away.call("POST", "/api/v1/hours/vouchers/redeem", ALICE_PHONE,
                           json={"voucher": voucher, "resident_id": alice_away}), 422, "voucher_untrusted")
    with home.app.app_context():  # home's own key, but made out to a third deployment
        from timebank.audit.checkpoints import signing_key

        home_key = signing_key()[0]
    _problem(away.call("POST", "/api/v1/hours/vouchers/redeem", ALICE_PHONE,
                       json={"voucher": forged(HOME, "third.example/tb", home_key), "resident_id": alice_away}),
             422, "voucher_invalid")
    assert away.redeem(ALICE_PHONE, second, alice_away)["minutes"] == 30

    # The way home: a voucher of 麒麟, redeemed in 红星.
    back = away.issue("committee", alice_away, 50)
    home.redeem("committee", back["voucher"], alice)
    assert home.minutes(alice) == 300 - 120 - 30 + 50
    assert away.minutes(alice_away) == 120 + 30 - 50

    # Both sides' clearing agree: what one sent the other received.
    at_home, at_away = home.clearing()[AWAY], away.clearing()[HOME]
    assert (at_home["sent_minutes"], at_home["received_minutes"], at_home["net_minutes"]) == (150, 50, -100)
    assert (at_away["sent_minutes"], at_away["received_minutes"], at_away["net_minutes"]) == (50, 150, 100)
    assert at_home["balance_minutes"] == 100 and at_away["balance_minutes"] == -100
    assert at_home["vouchers_sent"] == 2 and at_away["vouchers_received"] == 2
    detail = home.clearing(origin=AWAY)[AWAY]["vouchers"]
    assert {(d["direction"], d["minutes"]) for d in detail} == {("sent", 120), ("sent", 30), ("received", 50)}
    _problem(home.call("GET", "/api/v1/federation/clearing", "committee"), 403, "forbidden")

    home.verify()
    away.verify()


def test_an_unredeemed_voucher_expires_or_is_cancelled_and_the_minutes_come_back(pair, clock):
    home, away = pair
    alice = home.person("张三", ALICE_PHONE, minutes=100)
    alice_away = away.person("张三", ALICE_PHONE)
    home.trust(away)
    away.trust(home)

    short = home.issue("committee", alice, 40, expires_in_days=1)
    kept = home.issue("committee", alice, 25, expires_in_days=1)
    used = home.issue("committee", alice, 15, expires_in_days=1)
    away.redeem(ALICE_PHONE, used["voucher"], alice_away)
    assert home.minutes(alice) == 20
    later(pair, clock, days=1)
    # The receiver refuses it from its expiry on...
    _problem(away.call("POST", "/api/v1/hours/vouchers/redeem", ALICE_PHONE,
                       json={"voucher": short["voucher"], "resident_id": alice_away}), 410, "voucher_expired")
    # ...and the issuer gives the minutes back once the receiver's statement, dated a day after the
    # expiry, shows the voucher was not redeemed there; never on its own guess.
    later(pair, clock, days=1)
    assert "'returned': []" in home.run_job("voucher_expiry")
    assert home.minutes(alice) == 20
    early = away.call("GET", "/api/v1/federation/statement", "admin", query_string={"origin": HOME}).get_json()
    later(pair, clock, hours=1)
    taken = away.send_statement(home)
    assert taken["newly_redeemed"] == [used["voucher_id"]] and taken["discrepancies"] == []
    out = home.run_job("voucher_expiry")
    assert short["voucher_id"] in out and kept["voucher_id"] in out and used["voucher_id"] not in out
    assert home.minutes(alice) == 85
    assert "'returned': []" in home.run_job("voucher_expiry")
    assert home.minutes(alice) == 85
    r = home.call("GET", f"/api/v1/hours/vouchers/{short['voucher_id']}", ALICE_PHONE)
    assert r.get_json()["status"] == "expired" and r.get_json()["return_transaction_id"]
    assert home.call("GET", f"/api/v1/hours/vouchers/{used['voucher_id']}", ALICE_PHONE).get_json()["status"] \
        == "redeemed"
    # An older statement taken later changes nothing; a changed one is refused.
    assert home.call("POST", "/api/v1/federation/statements", "admin", json=early).status_code == 200
    assert home.minutes(alice) == 85
    forged = early["statement"].replace(f"{used['voucher_id']} 15", f"{used['voucher_id']} 16")
    _problem(home.call("POST", "/api/v1/federation/statements", "admin", json={"statement": forged}),
             422, "statement_untrusted")
    _problem(home.call("POST", "/api/v1/federation/statements", "committee", json=early), 403, "forbidden")

    # A cancel (a voucher printed by mistake): the committee, once; not the resident.
    wrong = home.issue(ALICE_PHONE, alice, 60)
    url = f"/api/v1/hours/vouchers/{wrong['voucher_id']}/cancel"
    _problem(home.call("POST", url, ALICE_PHONE, json={"reason": "打印错了"}), 403, "forbidden")
    r = home.call("POST", url, "committee", json={"reason": "打印错了"})
    assert r.status_code == 200 and r.get_json()["status"] == "cancelled", r.get_json()
    assert home.minutes(alice) == 85
    _problem(home.call("POST", url, "committee", json={"reason": "again"}), 409, "voucher_not_outstanding")

    cleared = home.clearing()[AWAY]
    assert (cleared["sent_minutes"], cleared["outstanding_minutes"], cleared["balance_minutes"]) == (15, 0, 15)
    assert cleared["confirmed_redeemed_minutes"] == 15 and cleared["statement_as_of"]
    assert away.clearing()[HOME]["received_minutes"] == 15
    home.verify()
    away.verify()


def test_the_issuer_needs_an_origin_and_a_key_that_are_well_formed(pair):
    home, _away = pair
    r = home.call("POST", "/api/v1/federation/issuers", "admin",
                  json={"origin": "bad origin", "public_key": "A" * 44})
    _problem(r, 422, "validation_error")
    r = home.call("POST", "/api/v1/federation/issuers", "admin",
                  json={"origin": "x.example/tb", "public_key": base64.b64encode(b"\x00" * 31).decode() + "AAAA"})
    _problem(r, 422, "validation_error")
    r = home.call("POST", "/api/v1/federation/issuers", "admin",
                  json={"origin": HOME, "public_key": home.public_key()})
    _problem(r, 422, "validation_error")  # its own origin


def _form_key(page: str, form_id: str) -> str:
    form = page.split(f'id="{form_id}"', 1)[1].split("</form>", 1)[0]
    return re.search(r'name="form_key" value="([^"]+)"', form).group(1)


def test_staff_issue_a_printable_voucher_and_redeem_one_on_the_pages(pair):
    from conftest import main_text, page_login

    home, away = pair
    alice = home.person("张三", ALICE_PHONE, minutes=90)
    alice_away = away.person("张三", ALICE_PHONE)
    home.trust(away)
    away.trust(home)
    home.user("grid", "grid_worker", community_code="hongxing")
    away.user("grid", "grid_worker", community_code="qilin")

    staff = page_login(home.app, "grid")
    page = staff.get("/committee/vouchers")
    assert page.status_code == 200 and AWAY in page.get_data(as_text=True)
    form = {"phone": ALICE_PHONE, "minutes": "60", "audience": AWAY, "days": "30",
            "form_key": _form_key(page.get_data(as_text=True), "voucher-issue-form")}
    r = staff.post("/committee/vouchers/issue", data=form)
    assert r.status_code == 302 and "/committee/vouchers/" in r.headers["Location"], r.get_data(as_text=True)[:300]
    assert staff.post("/committee/vouchers/issue", data=form).status_code == 302  # sent twice: done once
    assert home.minutes(alice) == 30
    printable = staff.get(r.headers["Location"])
    html = printable.get_data(as_text=True)
    assert printable.status_code == 200 and "<svg" in html and "张三" in main_text(printable)
    voucher_text = re.search(r'<pre class="hash" id="voucher-text">(.*?)</pre>', html, re.S).group(1)
    import html as html_module

    voucher_text = html_module.unescape(voucher_text)
    v = fmt.parse(voucher_text)
    assert (v.minutes, v.audience, v.expires - v.issued) == (60, AWAY, timedelta(days=30))

    there = page_login(away.app, "grid")
    page = there.get("/committee/vouchers").get_data(as_text=True)
    form = {"phone": ALICE_PHONE, "voucher": voucher_text.replace("\n", "\r\n"),
            "form_key": _form_key(page, "voucher-redeem-form")}
    r = there.post("/committee/vouchers/redeem", data=form, follow_redirects=True)
    assert r.status_code == 200 and "已兑换" in main_text(r), main_text(r)[:500]
    assert away.minutes(alice_away) == 60
    # the same paper again, with a new form: refused in words
    form["form_key"] = _form_key(there.get("/committee/vouchers").get_data(as_text=True), "voucher-redeem-form")
    r = there.post("/committee/vouchers/redeem", data=form, follow_redirects=True)
    assert away.minutes(alice_away) == 60
    assert "这张时间券已经兑换过了" in main_text(r)  # in words
    home.verify()
    away.verify()
