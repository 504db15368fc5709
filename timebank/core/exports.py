"""What every export (CSV and XLSX) writes into a cell: never a formula.

A spreadsheet program evaluates a cell whose text starts with ``=``, ``+``, ``-`` or ``@`` (and some
also after a leading tab or carriage return), so a help request titled ``=HYPERLINK(...)`` or a donor
named ``+cmd|...`` would run on the committee's computer. Every cell of every export goes through
:func:`safe_cell`:

- CSV: such text gets a leading ``'`` (the spreadsheet then shows it as text);
- XLSX: such text is a string cell with the "quote prefix" style (shown as typed, never evaluated,
  and still text when someone edits it); openpyxl would otherwise store a leading ``=`` as a formula.

Numbers stay numbers: -5 is the number -5, not the text ``'-5``. Use :func:`csv_writer` and
:func:`append_row` rather than writing rows by hand.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any

#: A cell whose text starts with one of these would be read as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: The same, as a set of first characters: :func:`safe_cell` and the CSV writer (which inlines the
#: check: the ledger export writes millions of cells) both test it.
_FORMULA_FIRST = frozenset(FORMULA_STARTS)


def safe_cell(value: Any, sheet: Any = None) -> Any:
    """The one rule for a cell of an export. Without ``sheet`` (CSV): the value, or formula-like text
    with a leading ``'``. With an openpyxl ``sheet`` (XLSX): the value, or a quote-prefixed text cell
    of that sheet holding the text as it is."""
    if not isinstance(value, str) or value[:1] not in _FORMULA_FIRST:
        return value
    if sheet is None:
        return "'" + value
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value)
    cell.data_type = "s"  # openpyxl made a leading "=" a formula
    cell.quotePrefix = True
    return cell




class _SafeWriter:
    def __init__(self, buffer, **kwargs):
        self._writer = csv.writer(buffer, **kwargs)

    def writerow(self, row: Iterable[Any]):
        return self._writer.writerow(
            ["'" + v if isinstance(v, str) and v[:1] in _FORMULA_FIRST else v for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(buffer, **kwargs) -> _SafeWriter:
    """``csv.writer`` whose every cell goes through :func:`safe_cell`."""
    return _SafeWriter(buffer, **kwargs)


def append_row(sheet, row: Iterable[Any]) -> None:
    """``sheet.append(row)`` (openpyxl, normal or write-only) with every cell through :func:`safe_cell`."""
    sheet.append([safe_cell(value, sheet) for value in row])


# --- long exports -----------------------------------------------------------------------------------

#: Called after every batch a streamed export sends (gunicorn's worker heartbeat, see
#: ``timebank/ops/gunicorn_conf.py``): a sync worker is otherwise killed by the master after
#: ``timeout`` seconds in one request, however fast the export is moving.
_progress_callbacks: list = []


def on_progress(callback) -> None:
    """Register ``callback()`` to be called as a long export makes progress."""
    _progress_callbacks.append(callback)


def keep_alive() -> None:
    """A long export has sent another batch: it is alive."""
    for callback in _progress_callbacks:
        callback()
