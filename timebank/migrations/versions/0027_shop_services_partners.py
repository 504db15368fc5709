"""services and partner shops: shop_items.kind, daily_places and partner_id; shop_partners (爱心商家)
and shop_partner_clerks; redemptions.partner_id

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None

_KIND = "kind IN ('goods', 'service')"
_DAILY_PLACES = "daily_places IS NULL OR (kind = 'service' AND daily_places > 0)"


def upgrade():
    op.create_table('shop_partners',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'],
                            name=op.f('fk_shop_partners_community_id_communities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shop_partners')),
    sa.UniqueConstraint('community_id', 'name', name='uq_shop_partners_community_name')
    )
    with op.batch_alter_table('shop_partners', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shop_partners_community_id'), ['community_id'], unique=False)

    op.create_table('shop_partner_clerks',
    sa.Column('user_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('partner_id', sa.Integer(), nullable=False),
    sa.Column('linked_at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['partner_id'], ['shop_partners.id'],
                            name=op.f('fk_shop_partner_clerks_partner_id_shop_partners')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_shop_partner_clerks_user_id_users')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_shop_partner_clerks'))
    )
    with op.batch_alter_table('shop_partner_clerks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shop_partner_clerks_partner_id'), ['partner_id'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.add_column('shop_items', sa.Column('kind', sa.String(length=16), server_default='goods', nullable=False))
        op.add_column('shop_items', sa.Column('daily_places', sa.Integer(), nullable=True))
        op.add_column('shop_items', sa.Column('partner_id', sa.Integer(), nullable=True))
        op.execute(f"ALTER TABLE shop_items ADD CONSTRAINT ck_shop_items_kind CHECK ({_KIND})")
        op.execute(f"ALTER TABLE shop_items ADD CONSTRAINT ck_shop_items_daily_places CHECK ({_DAILY_PLACES})")
        op.create_foreign_key(op.f('fk_shop_items_partner_id_shop_partners'), 'shop_items', 'shop_partners',
                              ['partner_id'], ['id'])
        op.add_column('redemptions', sa.Column('partner_id', sa.Integer(), nullable=True))
        op.create_foreign_key(op.f('fk_redemptions_partner_id_shop_partners'), 'redemptions', 'shop_partners',
                              ['partner_id'], ['id'])
    else:
        # SQLite adds the columns with their constraints in place (no table rebuild, which the foreign
        # keys of stock movements and receipt lines would refuse once there are rows).
        op.execute("ALTER TABLE shop_items ADD COLUMN kind VARCHAR(16) DEFAULT 'goods' NOT NULL"
                   f" CONSTRAINT ck_shop_items_kind CHECK ({_KIND})")
        op.execute("ALTER TABLE shop_items ADD COLUMN daily_places INTEGER"
                   f" CONSTRAINT ck_shop_items_daily_places CHECK ({_DAILY_PLACES})")
        op.execute("ALTER TABLE shop_items ADD COLUMN partner_id INTEGER"
                   " CONSTRAINT fk_shop_items_partner_id_shop_partners REFERENCES shop_partners (id)")
        op.execute("ALTER TABLE redemptions ADD COLUMN partner_id INTEGER"
                   " CONSTRAINT fk_redemptions_partner_id_shop_partners REFERENCES shop_partners (id)")
    op.create_index(op.f('ix_shop_items_partner_id'), 'shop_items', ['partner_id'], unique=False)
    op.create_index(op.f('ix_redemptions_partner_id'), 'redemptions', ['partner_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_redemptions_partner_id'), table_name='redemptions')
    op.drop_index(op.f('ix_shop_items_partner_id'), table_name='shop_items')
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(op.f('fk_redemptions_partner_id_shop_partners'), 'redemptions', type_='foreignkey')
        op.drop_constraint(op.f('fk_shop_items_partner_id_shop_partners'), 'shop_items', type_='foreignkey')
        op.execute("ALTER TABLE shop_items DROP CONSTRAINT ck_shop_items_daily_places")
        op.execute("ALTER TABLE shop_items DROP CONSTRAINT ck_shop_items_kind")
        op.drop_column('redemptions', 'partner_id')
        op.drop_column('shop_items', 'partner_id')
        op.drop_column('shop_items', 'daily_places')
        op.drop_column('shop_items', 'kind')
    else:
        # SQLite drops no column named by a foreign key or a CHECK of another column: the tables are
        # rebuilt with foreign keys off for the moment.
        op.execute("PRAGMA foreign_keys=OFF")
        with op.batch_alter_table('redemptions', schema=None) as batch_op:
            batch_op.drop_column('partner_id')
        with op.batch_alter_table('shop_items', schema=None) as batch_op:
            batch_op.drop_column('partner_id')
            batch_op.drop_column('daily_places')
            batch_op.drop_column('kind')
        op.execute("PRAGMA foreign_keys=ON")
    with op.batch_alter_table('shop_partner_clerks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shop_partner_clerks_partner_id'))
    op.drop_table('shop_partner_clerks')
    with op.batch_alter_table('shop_partners', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shop_partners_community_id'))
    op.drop_table('shop_partners')
