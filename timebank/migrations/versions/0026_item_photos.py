"""photos of goods (shop_item_photos): one image per item, shown on the till and the goods list

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-10

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('shop_item_photos',
    sa.Column('item_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('content_type', sa.String(length=32), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=True),
    sa.Column('uploaded_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("content_type IN ('image/jpeg', 'image/png', 'image/webp')",
                       name=op.f('ck_shop_item_photos_content_type')),
    sa.CheckConstraint('size_bytes > 0', name=op.f('ck_shop_item_photos_size_positive')),
    sa.ForeignKeyConstraint(['item_id'], ['shop_items.id'], name=op.f('fk_shop_item_photos_item_id_shop_items')),
    sa.PrimaryKeyConstraint('item_id', name=op.f('pk_shop_item_photos'))
    )


def downgrade():
    op.drop_table('shop_item_photos')
