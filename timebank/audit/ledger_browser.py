"""The ledger browser's query and the ledger export (CSV streamed, XLSX), shared by the API, the
committee pages and the reports.

A transaction belongs to a community (or a household, or a resident) when one of its postings
touches an account that :class:`timebank.core.accounts.AccountOwner` gives to it.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

from sqlalchemy import BigInteger, Select, and_, bindparam, func, or_, select

from ledger.models import Account, Posting, Transaction
from timebank.core.accounts import AccountOwner
from timebank.core.clock import local_zone, utc_naive
from timebank.core.database import reading
from timebank.core.exports import append_row, csv_writer, keep_alive
from timebank.core.extensions import db

#: The bound parameters of :func:`ledger_query` that the export's windows set to their ids.
AFTER_TRANSACTION, UPTO_TRANSACTION = "after_transaction", "upto_transaction"
#: Transaction ids read per query while exporting (windows keep memory flat on big ledgers).
EXPORT_BATCH = 2000
#: Columns of the ledger export (one row per posting).
EXPORT_COLUMNS = ("transaction_id", "created_at", "kind", "category", "reference", "memo", "actor",
                  "reverses_id", "account", "amount", "unit", "hash")


def ledger_query(*, community_id: int | None = None, household_id: int | None = None,
                 resident_id: int | None = None, category: str | None = None, kind: str | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 household_or_resident: tuple[int, int] | None = None) -> Select:
    """Transactions matching every given filter; ``since`` inclusive, ``until`` exclusive.
    ``household_or_resident`` (a resident's own view): transactions of the household's accounts or
    of the resident's own."""
    query = select(Transaction)
    # "Has a posting on an account of ..." as EXISTS, checked per transaction through the index on
    # postings.transaction_id: a keyset batch of the export or a page of the browser costs what it
    # reads. (An ``IN`` list of every matching transaction was rebuilt for every batch: quadratic.)
    # ``after_transaction`` and ``upto_transaction`` (open but in the export's windows): the postings'
    # own bounds. PostgreSQL does not carry the transactions' id range over to them, and its planner
    # merged or hashed each window with every posting before or after it (up to 1 s a window at 1M
    # transactions, 185 s for the whole export).
    owned = (select(Posting.id).join(AccountOwner, AccountOwner.account_id == Posting.account_id)
             .where(Posting.transaction_id == Transaction.id,
                    Posting.transaction_id > bindparam(AFTER_TRANSACTION, 0, type_=BigInteger),
                    Posting.transaction_id <= bindparam(UPTO_TRANSACTION, 2**63 - 1, type_=BigInteger)))
    if community_id is not None:
        owned = owned.where(AccountOwner.community_id == community_id)
    if household_id is not None:
        owned = owned.where(AccountOwner.household_id == household_id, AccountOwner.resident_id.is_(None))
    if resident_id is not None:
        owned = owned.where(AccountOwner.resident_id == resident_id)
    if household_or_resident is not None:
        household, resident = household_or_resident
        owned = owned.where(or_(and_(AccountOwner.household_id == household, AccountOwner.resident_id.is_(None)),
                                AccountOwner.resident_id == resident))
    if (community_id, household_id, resident_id, household_or_resident) != (None, None, None, None):
        query = query.where(owned.exists())
    if category:
        query = query.where(Transaction.category == category)
    if kind:
        query = query.where(Transaction.kind == kind)
    if since:
        query = query.where(Transaction.created_at >= utc_naive(since))
    if until:
        query = query.where(Transaction.created_at < utc_naive(until))
    return query


# --- the ledger export ----------------------------------------------------------------------------

def _export_rows(query):
    """Rows of the export (one per posting), transactions in id order, read in windows of
    ``EXPORT_BATCH`` ids up to the newest transaction at the start. Plain tuples from the connection,
    not ORM rows: at a million transactions the ORM's row handling cost more than the queries
    (docs/performance.md).

    Windows of ids rather than "the next 2,000 after the last one": bounded on both sides, each
    query is planned the same way whatever the statistics say (PostgreSQL, whose statistics did not
    yet know the ledger's newest ids, hashed every posting after the cursor for each batch and took
    150 s over the 2M rows of 1M transactions). A community with few transactions in a big ledger
    costs one cheap query per window."""
    columns = query.with_only_columns(
        Transaction.id, Transaction.created_at, Transaction.kind, Transaction.category, Transaction.reference,
        Transaction.memo, Transaction.actor, Transaction.reverses_id, Transaction.hash).order_by(Transaction.id)
    connection = db.session.connection()
    zone = local_zone()
    newest = connection.execute(select(func.max(Transaction.id))).scalar() or 0
    after = 0
    while after < newest:
        upto = after + EXPORT_BATCH
        transactions = connection.execute(columns.where(Transaction.id > after, Transaction.id <= upto)
                                          .params({AFTER_TRANSACTION: after, UPTO_TRANSACTION: upto})).all()
        after = upto
        if not transactions:
            continue
        legs: dict[int, list] = {t[0]: [] for t in transactions}
        for tx_id, code, amount, unit in connection.execute(
                select(Posting.transaction_id, Account.code, Posting.amount, Posting.unit)
                .join(Account, Account.id == Posting.account_id)
                .where(Posting.transaction_id.in_(list(legs))).order_by(Posting.transaction_id, Posting.id)):
            legs[tx_id].append((code, int(amount), unit))
        for tx_id, created, kind, category, reference, memo, actor, reverses_id, digest in transactions:
            head = (tx_id, created.replace(tzinfo=UTC).astimezone(zone).isoformat(), kind, category or "",
                    reference or "", memo or "", actor or "", reverses_id if reverses_id is not None else "")
            for code, amount, unit in legs[tx_id]:
                yield (*head, code, amount, unit, digest)


#: The first cell of the export's last row, followed by the number of posting rows before it.
TRAILER = "#end"


def export_csv_chunks(query, progress=None):
    """The export as CSV text chunks: a BOM, the header, the rows (one chunk per batch or so), and
    last a trailer row ``#end,<rows>``.

    A file without its trailer is not whole: the export broke off (the client also sees the
    connection end before the chunked body's end). The response's ``X-Export-Rows`` header says
    beforehand how many rows to expect. ``progress(rows)`` is called with each chunk (a background
    export records it, :mod:`timebank.audit.export_runs`)."""
    # Streamed after the request's commit, in a transaction of its own: a reading one, which never
    # waits for the writers nor holds them up, however long the export takes; on the read replica
    # when the deployment has one.
    with reading(replica=True):
        buffer = io.StringIO()
        writer = csv_writer(buffer)
        writer.writerow(EXPORT_COLUMNS)
        yield "\ufeff" + buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        count = 0
        for row in _export_rows(query):
            writer.writerow(row)
            count += 1
            if count % 500 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
                keep_alive()
                if progress is not None:
                    progress(count)
        writer.writerow((TRAILER, count))
        yield buffer.getvalue()


def count_postings(query) -> int:
    matching = query.with_only_columns(Transaction.id).order_by(None).subquery()
    with reading(replica=True):
        return db.session.execute(
            select(func.count()).select_from(Posting).join(matching, matching.c.id == Posting.transaction_id)
        ).scalar_one()


#: Data rows of one sheet of an XLSX export: a sheet holds 1,048,576 rows, the header is one.
SHEET_ROWS = 1_048_575


def write_xlsx(query, target, title: str = "ledger", progress=None) -> int:
    """Write the export as an XLSX workbook to ``target`` (a path or a binary file) and return its
    row count. openpyxl's write-only mode keeps no rows in memory. More rows than a sheet holds
    continue on further sheets (``ledger (2)``...), each with the header row."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = None
    count = 0
    with reading(replica=True):
        for row in _export_rows(query):
            if count % SHEET_ROWS == 0:
                number = count // SHEET_ROWS + 1
                sheet = workbook.create_sheet(title[:31] if number == 1 else f"{title[:24]} ({number})")
                append_row(sheet, EXPORT_COLUMNS)
            append_row(sheet, row)
            count += 1
            if count % 500 == 0:
                keep_alive()  # the worker's heartbeat: building a big workbook takes a while
                if progress is not None:
                    progress(count)
    if sheet is None:
        append_row(workbook.create_sheet(title[:31]), EXPORT_COLUMNS)
    workbook.save(target)
    return count


def export_xlsx(query, title: str = "ledger") -> bytes:
    """The export as an XLSX workbook in memory (see :func:`write_xlsx`)."""
    out = io.BytesIO()
    write_xlsx(query, out, title)
    return out.getvalue()
