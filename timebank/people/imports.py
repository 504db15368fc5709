"""The roster import (花名册导入): a committee loads its Excel roster of households and residents, with
the opening balances (期初积分) of its paper ledger, in one go.

One row per person. Rows with the same household name and address form one household. The file is
read (:func:`read_table`: CSV in UTF-8, with or without BOM, or GB18030 as Excel on a Chinese
Windows writes it; or XLSX), every row is checked (:func:`check`) against the same bounds as the
API's schemas for households and residents and against the database, and then written
(:func:`write`) all at once, or not at all when any row is wrong.

Importing the same file again creates nothing new: an existing household is found by name and
address in the community, an existing resident by phone or by name within the household, and an
opening balance is posted at most once per household, ever (the ledger's idempotency key
``opening_balance:household:<id>`` is unique in the database). An opening balance is a ledger
transaction of kind ``opening_balance`` from the community's opening issuance account
(:func:`timebank.core.accounts.opening_points`) to the household's wallet.

Like every operation, nothing here commits.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select, text

import ledger
from ledger import driver
from ledger.models import Account, Posting, Transaction
from timebank.core import accounts, ledgering
from timebank.core.audit_log import record
from timebank.core.clock import utc_naive
from timebank.core.database import take_write_lock
from timebank.core.extensions import db
from timebank.people.models import Community, Household, Resident, new_member_code

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: Media types a CSV arrives with (Windows names a .csv file after Excel).
CSV_TYPES = ("text/csv", "application/csv", "text/plain", "application/vnd.ms-excel")
#: The largest file taken, and the most rows read (both may be set in the configuration).
MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 50_000
#: An XLSX is a zip: what it may unpack to (a small file that unpacks to gigabytes is refused).
MAX_UNPACKED_BYTES = 200 * 1024 * 1024
#: The largest opening balance of one household: far above any paper ledger, far below any overflow.
MAX_OPENING_POINTS = 1_000_000
#: The most errors listed in one answer; one more entry says how many were left out.
MAX_ERRORS = 500

#: The columns, by their names in the file (Chinese or English), and their Chinese names for messages.
COLUMNS = {
    "household": "户名", "address": "地址", "grid": "网格", "color": "标签", "name": "姓名",
    "phone": "手机", "birth_year": "出生年份", "opening_points": "期初积分",
}
HEADERS = {**{chinese: column for column, chinese in COLUMNS.items()}, **{column: column for column in COLUMNS}}
REQUIRED = ("household", "name")
COLOR_WORDS = {"红": "red", "红色": "red", "红标": "red", "red": "red",
               "黄": "yellow", "黄色": "yellow", "黄标": "yellow", "yellow": "yellow",
               "绿": "green", "绿色": "green", "绿标": "green", "green": "green"}
PHONE = re.compile(r"^\+?[0-9]{5,20}$")
#: Spaces and dashes people put into phone numbers ("138 0013 8000", "138-0013-8000").
_PHONE_NOISE = re.compile(r"[\s\-\u3000]")
_WHOLE = re.compile(r"^[0-9]{1,9}$")
#: The one example row of the template.
EXAMPLE = ("张家", "幸福路1号1单元101", "1", "绿", "张三", "13800138000", "1956", "120")


class FileRefused(Exception):
    """The file cannot be read at all (not CSV or XLSX, not UTF-8 or GB18030, too many rows)."""


@dataclass
class RowError:
    row: int | None
    column: str | None
    message: str

    def as_dict(self) -> dict:
        return {"row": self.row, "column": self.column, "message": self.message}


@dataclass
class Person:
    row: int
    name: str
    phone: str | None
    birth_year: int | None
    #: The resident this row is, when they are on the roster already.
    existing_id: int | None = None


@dataclass
class PlannedHousehold:
    name: str
    address: str
    row: int
    grid: str | None = None
    color: str | None = None
    opening_points: int | None = None
    people: list[Person] = field(default_factory=list)
    existing_id: int | None = None
    #: Whether its opening balance is to be posted now (not posted before, and one is given).
    post_opening: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.address)


@dataclass
class Plan:
    """What a file would do: the households in file order, and what is wrong with it."""

    rows: int = 0
    households: list[PlannedHousehold] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    sha256: str = ""

    def error(self, row: int | None, column: str | None, message: str) -> None:
        self.errors.append(RowError(row, column, message))

    @property
    def households_created(self) -> int:
        return sum(1 for h in self.households if h.existing_id is None)

    @property
    def residents_created(self) -> int:
        return sum(1 for h in self.households for p in h.people if p.existing_id is None)

    @property
    def opening_balances(self) -> list[PlannedHousehold]:
        return [h for h in self.households if h.post_opening]

    def report(self) -> dict:
        """The answer: ``{rows, households_created, residents_created, opening_points_posted, errors}``
        (and ``opening_balances_posted``, how many households got one)."""
        errors = sorted(self.errors, key=lambda e: (e.row or 0, e.column or ""))
        listed = [e.as_dict() for e in errors[:MAX_ERRORS]]
        if len(errors) > MAX_ERRORS:
            listed.append(RowError(None, None, _("%(n)d more errors are not listed.",
                                                 n=len(errors) - MAX_ERRORS)).as_dict())
        opening = self.opening_balances
        return {
            "rows": self.rows,
            "households_created": self.households_created,
            "residents_created": self.residents_created,
            "opening_points_posted": sum(h.opening_points or 0 for h in opening),
            "opening_balances_posted": len(opening),
            "errors": listed,
        }


def limit(name: str, default: int) -> int:
    return int(current_app.config.get(name, default))


# --- reading the file ----------------------------------------------------------------------------------

def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_xlsx(data: bytes) -> bool:
    return data[:4] == b"PK\x03\x04"


def read_table(data: bytes) -> list[tuple[int, list[str]]]:
    """The file's rows as (row number as the spreadsheet shows it, cells as text), the header first.
    Empty rows are left out (their numbers are kept by the others). Raises :class:`FileRefused`."""
    if not data:
        raise FileRefused(_("The file is empty."))
    rows = _read_xlsx(data) if is_xlsx(data) else _read_csv(data)
    table: list[tuple] = []
    most = limit("TIMEBANK_IMPORT_MAX_ROWS", MAX_ROWS)
    for number, cells in rows:
        cells = [c.strip().replace("\u3000", " ").strip() for c in cells]
        while cells and not cells[-1]:
            cells.pop()
        if not cells:
            continue
        if len(table) > most:  # the header and ``most`` rows of people
            raise FileRefused(_("The file has more than %(n)d rows; split it into smaller files.", n=most))
        table.append((number, cells))
    return table


def _decode(data: bytes) -> str:
    # Excel on a Chinese Windows saves "CSV" in GB18030 (GBK); elsewhere UTF-8, often with a BOM.
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise FileRefused(_("The file is neither UTF-8 nor GB18030 text, nor an XLSX workbook."))


def _read_csv(data: bytes):
    text_ = _decode(data)
    if "\x00" in text_:
        raise FileRefused(_("The file is not a CSV text file (it holds NUL characters)."))
    reader = csv.reader(io.StringIO(text_, newline=""))
    try:
        yield from enumerate(reader, 1)
    except csv.Error as exc:
        raise FileRefused(_("The CSV cannot be read near row %(row)d: %(reason)s", row=reader.line_num,
                            reason=str(exc))) from None


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone or a year typed as a number: 13800138000.0
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _read_xlsx(data: bytes):
    import openpyxl

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise FileRefused(_("The file is not a readable XLSX workbook.")) from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise FileRefused(_("The workbook is too large once unpacked."))
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds (KeyError, ValueError, InvalidFileException...) on a bad file
        raise FileRefused(_("The file is not a readable XLSX workbook.")) from None
    try:
        sheet = workbook.worksheets[0]
        for number, values in enumerate(sheet.iter_rows(values_only=True), 1):
            yield number, [_cell_text(v) for v in values]
    except FileRefused:
        raise
    except Exception:  # a damaged sheet inside a good zip
        raise FileRefused(_("The file is not a readable XLSX workbook.")) from None
    finally:
        workbook.close()


# --- checking the rows -----------------------------------------------------------------------------------

def _header_key(cell: str) -> str:
    return cell.replace("\ufeff", "").strip().rstrip("*＊").strip().lower()


def _columns(plan: Plan, header: list[str]) -> dict[str, tuple[int, str]]:
    """column -> (index, the header as written), from row 1."""
    found: dict[str, tuple[int, str]] = {}
    for index, cell in enumerate(header):
        if not cell:
            continue
        column = HEADERS.get(_header_key(cell))
        if column is None:
            plan.error(1, cell, _("Unknown column. The columns are: %(names)s.",
                                  names="、".join(f"{c}/{e}" for e, c in COLUMNS.items())))
        elif column in found:
            plan.error(1, cell, _("This column appears twice."))
        else:
            found[column] = (index, cell)
    for column in REQUIRED:
        if column not in found:
            plan.error(1, COLUMNS[column], _("The column %(name)s is missing.", name=COLUMNS[column]))
    return found


def parse(plan: Plan, table: list[tuple[int, list[str]]]) -> None:
    """Check every row on its own and group the rows into households (no database)."""
    if not table or table[0][0] != 1:
        plan.error(1, None, _("Row 1 must hold the column names (户名, 姓名, ...)."))
        return
    columns = _columns(plan, table[0][1])
    if plan.errors:
        return
    by_key: dict[tuple[str, str], PlannedHousehold] = {}
    phones: dict[str, int] = {}
    names: dict[tuple[tuple[str, str], str], Person] = {}
    plan.rows = len(table) - 1
    named = {index for index, _heading in columns.values()}
    def heading(column: str) -> str:
        return columns[column][1] if column in columns else COLUMNS[column]

    for number, cells in table[1:]:
        values = {column: cells[index] if index < len(cells) else "" for column, (index, _h) in columns.items()}

        def cell(column: str, values=values) -> str:
            return values.get(column, "")

        def wrong(column: str, message: str, number=number) -> None:
            plan.error(number, heading(column), message)

        before = len(plan.errors)
        for index, value in enumerate(cells):
            if "\x00" in value:
                plan.error(number, None, _("The row holds NUL characters."))
                break
            if value and index not in named:
                plan.error(number, None, _("The row has a value in a column without a name."))
                break
        household_name, address, grid = cell("household"), cell("address"), cell("grid")
        person_name, phone = cell("name"), _PHONE_NOISE.sub("", cell("phone"))
        if not household_name:
            wrong("household", _("The household name is missing."))
        elif len(household_name) > 200:
            wrong("household", _("At most %(n)d characters.", n=200))
        if len(address) > 300:
            wrong("address", _("At most %(n)d characters.", n=300))
        if len(grid) > 64:
            wrong("grid", _("At most %(n)d characters.", n=64))
        color = None
        if cell("color"):
            color = COLOR_WORDS.get(cell("color").lower())
            if color is None:
                wrong("color", _("The label is 红, 黄 or 绿 (red, yellow or green)."))
        if not person_name:
            wrong("name", _("The name is missing."))
        elif len(person_name) > 100:
            wrong("name", _("At most %(n)d characters.", n=100))
        if phone and not PHONE.match(phone):
            wrong("phone", _("A phone number is 5 to 20 digits, optionally after a +."))
        elif phone in phones:
            wrong("phone", _("The same phone number is in row %(row)d.", row=phones[phone]))
        birth_year = None
        if cell("birth_year"):
            text_ = cell("birth_year")
            if not _WHOLE.match(text_) or not 1900 <= int(text_) <= 2100:
                wrong("birth_year", _("The birth year is a year from 1900 to 2100, such as 1956."))
            else:
                birth_year = int(text_)
        opening = None
        if cell("opening_points"):
            text_ = cell("opening_points")
            if not _WHOLE.match(text_) or int(text_) > MAX_OPENING_POINTS:
                wrong("opening_points", _("Opening points are a whole number from 0 to %(n)d.",
                                          n=MAX_OPENING_POINTS))
            else:
                opening = int(text_)
        if len(plan.errors) > before:
            continue
        if phone:
            phones[phone] = number
        key = (household_name, address)
        household = by_key.get(key)
        if household is None:
            household = by_key[key] = PlannedHousehold(household_name, address, number)
            plan.households.append(household)
        for column, planned in (("grid", grid or None), ("color", color)):
            if planned is None:
                continue
            if getattr(household, column) is None:
                setattr(household, column, planned)
            elif getattr(household, column) != planned:
                wrong(column, _("Row %(row)d of the same household says otherwise.", row=household.row))
        if opening is not None:
            if household.opening_points is None:
                household.opening_points = opening
            elif household.opening_points != opening:
                wrong("opening_points", _("The household's opening points are given once (row %(row)d says "
                                          "%(points)d).", row=household.row, points=household.opening_points))
        twin = names.get((key, person_name))
        if twin is not None and not (phone and twin.phone):
            wrong("name", _("The same name is in row %(row)d of this household; give each a phone number.",
                            row=twin.row))
        person = Person(number, person_name, phone or None, birth_year)
        names.setdefault((key, person_name), person)
        household.people.append(person)


def _chunks(items: list, size: int = 500):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def match(plan: Plan, community: Community) -> None:
    """Find what is on the roster already, and what the file would clash with (reads only)."""
    existing: dict[tuple[str, str], list[int]] = {}
    for hid, name, address in db.session.execute(
            select(Household.id, Household.name, Household.address).where(Household.community_id == community.id)):
        existing.setdefault((name, address or ""), []).append(hid)
    for household in plan.households:
        found = existing.get(household.key, [])
        if len(found) > 1:
            plan.error(household.row, COLUMNS["household"], _(
                "There are %(n)d households with this name and address already; merge them first.", n=len(found)))
        elif found:
            household.existing_id = found[0]
    matched = [h.existing_id for h in plan.households if h.existing_id is not None]
    members: dict[int, list[tuple[int, str, str | None]]] = {}
    for ids in _chunks(matched):
        for rid, hid, name, phone in db.session.execute(
                select(Resident.id, Resident.household_id, Resident.name, Resident.phone)
                .where(Resident.household_id.in_(ids))):
            members.setdefault(hid, []).append((rid, name, phone))
    phones = [p.phone for h in plan.households for p in h.people if p.phone]
    owners: dict[str, tuple[int, int, str]] = {}
    for chunk in _chunks(phones):
        for rid, hid, name, phone in db.session.execute(
                select(Resident.id, Resident.household_id, Resident.name, Resident.phone)
                .where(Resident.phone.in_(chunk))):
            assert phone is not None  # found by phone
            owners[phone] = (rid, hid, name)
    for household in plan.households:
        here = members.get(household.existing_id, []) if household.existing_id else []
        for person in household.people:
            _match_person(plan, household, person, here, owners)
    _match_opening(plan)


def _match_person(plan, household, person, here, owners) -> None:
    owner = owners.get(person.phone) if person.phone else None
    if owner is not None:
        rid, hid, name = owner
        if hid != household.existing_id:
            plan.error(person.row, COLUMNS["phone"], _("This phone number belongs to a resident of another "
                                                      "household (%(name)s).", name=name))
        elif name != person.name:
            plan.error(person.row, COLUMNS["phone"], _("This phone number belongs to %(name)s of this household.",
                                                      name=name))
        else:
            person.existing_id = rid
        return
    same_name = [(rid, phone) for rid, name, phone in here if name == person.name]
    if not same_name:
        return
    rid, phone = same_name[0]
    if phone and person.phone:
        plan.error(person.row, COLUMNS["phone"], _("%(name)s of this household is on the roster with another "
                                                  "phone number.", name=person.name))
    else:
        person.existing_id = rid


def opening_key(household_id: int) -> str:
    """The ledger's idempotency key of a household's opening balance: unique, so it is posted once ever."""
    return f"opening_balance:household:{household_id}"


def _match_opening(plan: Plan) -> None:
    wanted = {opening_key(h.existing_id): h for h in plan.households
              if h.existing_id is not None and h.opening_points is not None}
    posted: dict[str, int] = {}
    for keys in _chunks(list(wanted)):
        rows = db.session.execute(
            select(Transaction.idempotency_key, Posting.amount)
            .join(Posting, Posting.transaction_id == Transaction.id)
            .join(Account, Account.id == Posting.account_id)
            .where(Transaction.idempotency_key.in_(keys), Posting.amount > 0, Account.code.like("household:%")))
        posted.update({str(key): int(amount) for key, amount in rows})
    for household in plan.households:
        if household.opening_points is None or household.opening_points == 0:
            continue
        key = opening_key(household.existing_id) if household.existing_id is not None else None
        if key in posted:
            if posted[key] != household.opening_points:
                plan.error(household.row, COLUMNS["opening_points"], _(
                    "This household's opening balance was posted already (%(points)d points); it is posted "
                    "once. A correction is a compensating entry in the ledger.", points=posted[key]))
            continue
        household.post_opening = True


def check(community: Community, data: bytes) -> Plan:
    """Read and check ``data`` against the community's roster: the plan, with its errors (reads only)."""
    plan = Plan(sha256=file_hash(data))
    try:
        table = read_table(data)
    except FileRefused as exc:
        plan.error(None, None, str(exc))
        return plan
    parse(plan, table)
    if plan.households:
        match(plan, community)
    return plan


# --- writing -----------------------------------------------------------------------------------------------

def lock_community(community: Community) -> None:
    """One import per community at a time, the checks and the writes under the same lock: two imports
    of one file at once would both find a household missing. SQLite: the write lock; PostgreSQL: an
    advisory lock on the community (two 32-bit keys, apart from the ledger's one 64-bit key)."""
    take_write_lock(db.session)
    if db.session.connection().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:space, :community)"),
                           {"space": 0x726F7374, "community": community.id})


def _insert(connection, table, rows: list[dict]) -> list[int]:
    """Insert ``rows`` (each with a new, unique ``member_code``) in one statement; their ids, in order.

    One ``INSERT`` of many rows on the driver's cursor (:func:`ledger.driver.insert_rows`): not
    ``INSERT ... RETURNING``, which SQLAlchemy sends one row at a time on SQLite when the order of the
    ids matters, nor the ORM's bulk insert, four times as slow again. The member codes, unique by
    constraint, find the rows."""
    columns = list(rows[0])
    dialect = connection.dialect.name
    driver.insert_rows(connection, table.name, columns, [
        [driver.timestamp(dialect, row[c]) if isinstance(row[c], datetime) else row[c] for c in columns]
        for row in rows])
    codes = [row["member_code"] for row in rows]
    found = {code: row_id for code, row_id in connection.execute(
        select(table.c.member_code, table.c.id).where(table.c.member_code.in_(codes)))}
    return [found[code] for code in codes]


def write(plan: Plan, community: Community, user, *, via: str) -> dict:
    """Write a checked plan without errors: households, residents and their wallets in batches, then one
    ledger transaction per opening balance, then one audit entry. Returns the report."""
    assert not plan.errors
    report = plan.report()
    now = utc_naive()
    connection = db.session.connection()
    households, residents = Household.__table__, Resident.__table__
    new_households = [h for h in plan.households if h.existing_id is None]
    for chunk in _chunks(new_households):
        codes = _insert(connection, households, [
            {"community_id": community.id, "name": h.name, "address": h.address, "grid": h.grid,
             "color": h.color or "green", "member_code": new_member_code("H"), "created_at": now} for h in chunk])
        for household, hid in zip(chunk, codes, strict=True):
            household.existing_id = hid
    new_people = [(h, p) for h in plan.households for p in h.people if p.existing_id is None]
    for chunk in _chunks(new_people):
        codes = _insert(connection, residents, [
            {"household_id": h.existing_id, "name": p.name, "phone": p.phone, "birth_year": p.birth_year,
             "member_code": new_member_code("R"), "created_at": now} for h, p in chunk])
        for (_household, person), rid in zip(chunk, codes, strict=True):
            person.existing_id = rid
    accounts.open_many(db.session, community.id, [h.existing_id for h in new_households],
                       [(p.existing_id, h.existing_id) for h, p in new_people])
    opening = plan.opening_balances
    if opening:
        source = accounts.open_opening(db.session, community.id)
        reference = f"import:{plan.sha256[:16]}"
        # One transaction per household (its own idempotency key, its own line in the household's
        # history), written together: one by one cost a round trip per statement, 11 statements each.
        requests = []
        for household in opening:
            assert household.existing_id is not None and household.opening_points is not None  # written above
            requests.append(ledger.Request(
                [ledger.Leg(source, -household.opening_points),
                 ledger.Leg(accounts.household_points(household.existing_id), household.opening_points)],
                kind="opening_balance", memo="期初积分（导入花名册）",
                actor=user.actor, reference=reference, idempotency_key=opening_key(household.existing_id)))
        ledgering.post_many(community.id, requests)
    record("roster.import", user=user, target=f"community:{community.id}", community_id=community.id,
           via=via, file_sha256=plan.sha256, rows=report["rows"], households_created=report["households_created"],
           residents_created=report["residents_created"], opening_points_posted=report["opening_points_posted"],
           opening_balances_posted=report["opening_balances_posted"])
    return report


def run(community: Community, user, data: bytes, *, dry_run: bool, via: str) -> tuple[Plan, dict]:
    """Check ``data`` and, unless ``dry_run`` or a row is wrong, write it. Returns the plan and the report
    (the caller answers 422 ``import_invalid`` when ``plan.errors``)."""
    if not dry_run:
        lock_community(community)
    plan = check(community, data)
    if plan.errors or dry_run:
        return plan, plan.report()
    return plan, write(plan, community, user, via=via)
