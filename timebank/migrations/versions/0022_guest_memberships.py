"""across communities: guest memberships (候鸟, 流动党员): a person's membership of a host community
until a date (the guest wallet is a ledger account, opened when the membership is made); claims.guest:
a guest's claim, whose points go to the guest wallet

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-10

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ALTER TABLE ADD COLUMN on both databases (a batch operation would rebuild the table on SQLite).
    op.add_column('claims', sa.Column('guest', sa.Boolean(), server_default=sa.false(), nullable=False))

    op.create_table('guest_memberships',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('resident_id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('until', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'],
                            name=op.f('fk_guest_memberships_community_id_communities')),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'],
                            name=op.f('fk_guest_memberships_created_by_user_id_users')),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'],
                            name=op.f('fk_guest_memberships_resident_id_residents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_guest_memberships')),
    sa.UniqueConstraint('resident_id', 'community_id', name='uq_guest_memberships_resident_community')
    )
    with op.batch_alter_table('guest_memberships', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_guest_memberships_community_id'), ['community_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_guest_memberships_resident_id'), ['resident_id'], unique=False)


def downgrade():
    with op.batch_alter_table('guest_memberships', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_guest_memberships_resident_id'))
        batch_op.drop_index(batch_op.f('ix_guest_memberships_community_id'))
    op.drop_table('guest_memberships')
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.drop_column('guest')
