"""shop: a stock movement moves at most 1,000,000 units either way (what the API takes), so that no
sum over the movement log can overflow; PostgreSQL holds it as a CHECK, SQLite as a trigger (adding a
CHECK there would rebuild the table and lose its triggers)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_BOUND = 1_000_000
_OUT = f"NEW.quantity NOT BETWEEN {-_BOUND} AND {_BOUND}"


def upgrade():
    bind = op.get_bind()
    bad = bind.exec_driver_sql(
        f"SELECT id FROM stock_movements WHERE quantity NOT BETWEEN {-_BOUND} AND {_BOUND} ORDER BY id").all()
    if bad:
        ids = ", ".join(str(row[0]) for row in bad[:20])
        raise RuntimeError(f"stock movements with more than {_BOUND} units (ids {ids}): correct them before "
                           "upgrading (see docs/operations.md, 'Input rules every endpoint gets')")
    if bind.dialect.name == "sqlite":
        op.execute(f"""CREATE TRIGGER stock_movements_quantity_in_bounds BEFORE INSERT ON stock_movements
            WHEN {_OUT} BEGIN
            SELECT RAISE(ABORT, 'CHECK constraint failed: ck_stock_movements_quantity_in_bounds'); END""")
    else:
        op.execute(f"""ALTER TABLE stock_movements ADD CONSTRAINT ck_stock_movements_quantity_in_bounds
            CHECK (quantity BETWEEN {-_BOUND} AND {_BOUND})""")


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS stock_movements_quantity_in_bounds")
    else:
        op.execute("ALTER TABLE stock_movements DROP CONSTRAINT IF EXISTS ck_stock_movements_quantity_in_bounds")
