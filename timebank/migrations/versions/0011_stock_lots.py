"""shop: what each stock lot still holds (stock_lots), kept by triggers on the movement and
consumption logs, so a sale's FIFO attribution no longer sums a lot's whole history; and three
indexes dropped that only repeated the first column of another index (each was one more page
written by every sale)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

# A lot is opened by an incoming movement; consumptions (and give-backs, negative) move what it holds.
_OPEN_WHEN = "NEW.reason IN ('donation', 'purchase', 'adjustment') AND NEW.quantity > 0"
_OPEN = ("INSERT INTO stock_lots (lot_id, item_id, quantity, remaining)"
         " VALUES (NEW.id, NEW.item_id, NEW.quantity, NEW.quantity);")
_TAKE = "UPDATE stock_lots SET remaining = remaining - NEW.quantity WHERE lot_id = NEW.lot_id;"


def upgrade():
    op.create_table('stock_lots',
    sa.Column('lot_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('remaining', sa.Integer(), nullable=False),
    sa.CheckConstraint('remaining >= 0 AND remaining <= quantity', name=op.f('ck_stock_lots_remaining_in_range')),
    sa.ForeignKeyConstraint(['item_id'], ['shop_items.id'], name=op.f('fk_stock_lots_item_id_shop_items')),
    sa.ForeignKeyConstraint(['lot_id'], ['stock_movements.id'], name=op.f('fk_stock_lots_lot_id_stock_movements')),
    sa.PrimaryKeyConstraint('lot_id', name=op.f('pk_stock_lots'))
    )
    with op.batch_alter_table('stock_lots', schema=None) as batch_op:
        batch_op.create_index('ix_stock_lots_item_lot', ['item_id', 'lot_id'], unique=False)

    with op.batch_alter_table('stock_movements', schema=None) as batch_op:
        batch_op.drop_index('ix_stock_movements_item_id')  # ix_stock_movements_item_created serves it
    with op.batch_alter_table('redemptions', schema=None) as batch_op:
        batch_op.drop_index('ix_redemptions_community_id')  # uq_redemptions_community_receipt_no serves it
    with op.batch_alter_table('redemption_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_redemption_lines_redemption_id')  # uq_redemption_lines_redemption_item serves it

    # What the existing logs say each lot holds.
    op.execute(
        """INSERT INTO stock_lots (lot_id, item_id, quantity, remaining)
        SELECT m.id, m.item_id, m.quantity, m.quantity - COALESCE(
            (SELECT SUM(c.quantity) FROM stock_lot_consumptions c WHERE c.lot_id = m.id), 0)
        FROM stock_movements m
        WHERE m.reason IN ('donation', 'purchase', 'adjustment') AND m.quantity > 0"""
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"""CREATE TRIGGER stock_movements_open_lot AFTER INSERT ON stock_movements
            WHEN {_OPEN_WHEN} BEGIN {_OPEN} END""")
        op.execute(f"""CREATE TRIGGER stock_lot_consumptions_take AFTER INSERT ON stock_lot_consumptions
            BEGIN {_TAKE} END""")
    else:
        op.execute(f"""CREATE OR REPLACE FUNCTION stock_movement_open_lot() RETURNS trigger AS $$
            BEGIN {_OPEN} RETURN NEW; END; $$ LANGUAGE plpgsql""")
        op.execute(f"""CREATE TRIGGER stock_movements_open_lot AFTER INSERT ON stock_movements
            FOR EACH ROW WHEN ({_OPEN_WHEN}) EXECUTE FUNCTION stock_movement_open_lot()""")
        op.execute(f"""CREATE OR REPLACE FUNCTION stock_lot_consumption_take() RETURNS trigger AS $$
            BEGIN {_TAKE} RETURN NEW; END; $$ LANGUAGE plpgsql""")
        op.execute("""CREATE TRIGGER stock_lot_consumptions_take AFTER INSERT ON stock_lot_consumptions
            FOR EACH ROW EXECUTE FUNCTION stock_lot_consumption_take()""")


def downgrade():
    op.execute("DROP TRIGGER IF EXISTS stock_movements_open_lot" +
               (" ON stock_movements" if op.get_bind().dialect.name == "postgresql" else ""))
    op.execute("DROP TRIGGER IF EXISTS stock_lot_consumptions_take" +
               (" ON stock_lot_consumptions" if op.get_bind().dialect.name == "postgresql" else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS stock_movement_open_lot()")
        op.execute("DROP FUNCTION IF EXISTS stock_lot_consumption_take()")
    with op.batch_alter_table('stock_lots', schema=None) as batch_op:
        batch_op.drop_index('ix_stock_lots_item_lot')

    op.drop_table('stock_lots')
    with op.batch_alter_table('redemption_lines', schema=None) as batch_op:
        batch_op.create_index('ix_redemption_lines_redemption_id', ['redemption_id'], unique=False)
    with op.batch_alter_table('redemptions', schema=None) as batch_op:
        batch_op.create_index('ix_redemptions_community_id', ['community_id'], unique=False)
    with op.batch_alter_table('stock_movements', schema=None) as batch_op:
        batch_op.create_index('ix_stock_movements_item_id', ['item_id'], unique=False)
