"""time bank: the community pool may not go below zero (like a wallet); a rule's cap may count
minutes (rule_versions.cap_minutes_period, cap_max_minutes)

A pool that is already below zero when this runs keeps its old flag (the database would refuse
the flip): the application still refuses every payment such a pool cannot cover, and the operator
sees it in the monthly report's pool balance.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03

"""
import sqlalchemy as sa
from alembic import op

from ledger.schema import SQLITE_DDL

# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

_POOLS = "code LIKE 'community:%:pool:minutes'"
_PERIODS = "('day', 'week', 'month', 'year')"
_CHECKS = {
    "ck_rule_versions_cap_minutes_period": f"cap_minutes_period IS NULL OR cap_minutes_period IN {_PERIODS}",
    "ck_rule_versions_cap_minutes_complete": "(cap_minutes_period IS NULL) = (cap_max_minutes IS NULL)",
    "ck_rule_versions_cap_minutes_positive": "cap_max_minutes IS NULL OR cap_max_minutes > 0",
    "ck_rule_versions_cap_same_period":
        "cap_period IS NULL OR cap_minutes_period IS NULL OR cap_period = cap_minutes_period",
}


def _set_pool_flag(allow_negative: bool) -> None:
    """The account's negative flag is fixed by a trigger; lift it for this one statement."""
    bind = op.get_bind()
    where = _POOLS if allow_negative else f"{_POOLS} AND balance >= 0"
    update = f"UPDATE ledger_accounts SET allow_negative = {'true' if allow_negative else 'false'} WHERE {where}"
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE ledger_accounts DISABLE TRIGGER ledger_accounts_fixed")
        op.execute(update)
        op.execute("ALTER TABLE ledger_accounts ENABLE TRIGGER ledger_accounts_fixed")
    else:
        op.execute("DROP TRIGGER ledger_accounts_fixed")
        op.execute(update)
        op.execute(next(ddl for ddl in SQLITE_DDL if "TRIGGER ledger_accounts_fixed" in ddl))


def upgrade():
    _set_pool_flag(False)
    if op.get_bind().dialect.name == "postgresql":
        op.add_column('rule_versions', sa.Column('cap_minutes_period', sa.String(length=8), nullable=True))
        op.add_column('rule_versions', sa.Column('cap_max_minutes', sa.Integer(), nullable=True))
        for name, condition in _CHECKS.items():
            op.execute(f"ALTER TABLE rule_versions ADD CONSTRAINT {name} CHECK ({condition})")
    else:
        # SQLite adds a column with its CHECK constraints in place (no table rebuild, which the
        # foreign keys of claims to rule_versions would refuse).
        op.execute("ALTER TABLE rule_versions ADD COLUMN cap_minutes_period VARCHAR(8)"
                   " CONSTRAINT ck_rule_versions_cap_minutes_period"
                   f" CHECK ({_CHECKS['ck_rule_versions_cap_minutes_period']})")
        op.execute("ALTER TABLE rule_versions ADD COLUMN cap_max_minutes INTEGER" + "".join(
            f" CONSTRAINT {name} CHECK ({_CHECKS[name]})" for name in (
                "ck_rule_versions_cap_minutes_complete", "ck_rule_versions_cap_minutes_positive",
                "ck_rule_versions_cap_same_period")))


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for name in _CHECKS:
            op.execute(f"ALTER TABLE rule_versions DROP CONSTRAINT {name}")
    # On SQLite each column goes with the CHECK constraints attached to it (cap_max_minutes first).
    op.execute("ALTER TABLE rule_versions DROP COLUMN cap_max_minutes")
    op.execute("ALTER TABLE rule_versions DROP COLUMN cap_minutes_period")
    _set_pool_flag(True)
