"""pay codes with a short number for typing at the till (shop_pay_codes)

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-10

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('shop_pay_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('resident_id', sa.Integer(), nullable=False),
    sa.Column('short_code', sa.String(length=8), nullable=True),
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('issued_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_shop_pay_codes_resident_id_residents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shop_pay_codes')),
    sa.UniqueConstraint('nonce', name=op.f('uq_shop_pay_codes_nonce')),
    sa.UniqueConstraint('short_code', name=op.f('uq_shop_pay_codes_short_code'))
    )
    op.create_index(op.f('ix_shop_pay_codes_resident_id'), 'shop_pay_codes', ['resident_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_shop_pay_codes_resident_id'), table_name='shop_pay_codes')
    op.drop_table('shop_pay_codes')
