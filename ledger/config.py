"""What the application tells the ledger: the units of its accounts.

The ledger hard-codes none. The application calls :func:`configure` once per process, before it
opens an account or posts:

* ``units``: the units accounts may be kept in, e.g. ``("points", "minutes")``.
  :func:`ledger.open_account` refuses any other with :class:`ledger.UnknownUnit`, and the accounts
  and postings tables get ``CHECK (unit IN (...))`` built from them, in the order given
  (:func:`ledger.models.declare_units`), so the metadata equals a schema migrated with the same
  units. The units are fixed for the process, as the tables are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ledger import models

# Units are written into DDL as they are, and the unit columns are String(16).
_UNIT = re.compile(r"[a-z][a-z0-9_]{0,15}")


@dataclass
class Settings:
    #: The units accounts may be kept in; none until the application declares them.
    units: tuple[str, ...] = ()


#: This process's settings, as :func:`configure` left them.
settings = Settings()


def configure(*, units: Iterable[str]) -> None:
    """Tell the ledger its units (see module docs).

    Calling it again is fine (every app the process creates may call it) as long as the units are
    the same.
    """
    declared = tuple(units)
    if not declared:
        raise ValueError("the ledger needs at least one unit")
    for unit in declared:
        if not isinstance(unit, str) or not _UNIT.fullmatch(unit):
            raise ValueError(f"unit {unit!r} must be 1 to 16 of a-z, 0-9 and _, starting with a letter")
    if len(set(declared)) != len(declared):
        raise ValueError(f"units {declared} repeat one")
    if settings.units and settings.units != declared:
        raise ValueError(f"the ledger's units are {settings.units} in this process, not {declared}")
    models.declare_units(declared)
    settings.units = declared
