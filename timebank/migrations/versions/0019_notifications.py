"""notifications: the outbox of notices (to a resident or a staff login), written with the event
they tell of, with their delivery (page, text message with retries and dead letters, printed list)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('resident_id', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('household_id', sa.Integer(), nullable=True),
    sa.Column('event', sa.String(length=40), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('read_at', sa.DateTime(), nullable=True),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('delivered_at', sa.DateTime(), nullable=True),
    sa.Column('delivered_by_user_id', sa.Integer(), nullable=True),
    sa.Column('dead_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint('(resident_id IS NULL) <> (user_id IS NULL)', name=op.f('ck_notifications_one_recipient')),
    sa.CheckConstraint("channel IN ('page', 'sms', 'print')", name=op.f('ck_notifications_channel')),
    sa.CheckConstraint("status IN ('none', 'pending', 'sent', 'delivered', 'dead')",
                       name=op.f('ck_notifications_status')),
    sa.CheckConstraint("(channel = 'page') = (status = 'none')", name=op.f('ck_notifications_page_has_no_delivery')),
    sa.CheckConstraint('attempts >= 0', name=op.f('ck_notifications_attempts')),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'],
                            name=op.f('fk_notifications_community_id_communities')),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_notifications_resident_id_residents')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notifications_user_id_users')),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'],
                            name=op.f('fk_notifications_household_id_households')),
    sa.ForeignKeyConstraint(['delivered_by_user_id'], ['users.id'],
                            name=op.f('fk_notifications_delivered_by_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_notifications_dedupe_key'))
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notifications_community_id'), ['community_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notifications_household_id'), ['household_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notifications_created_at'), ['created_at'], unique=False)
        batch_op.create_index('ix_notifications_resident_id_id', ['resident_id', 'id'], unique=False)
        batch_op.create_index('ix_notifications_user_id_id', ['user_id', 'id'], unique=False)
        batch_op.create_index('ix_notifications_due', ['channel', 'status', 'next_attempt_at'], unique=False)


def downgrade():
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_due')
        batch_op.drop_index('ix_notifications_user_id_id')
        batch_op.drop_index('ix_notifications_resident_id_id')
        batch_op.drop_index(batch_op.f('ix_notifications_created_at'))
        batch_op.drop_index(batch_op.f('ix_notifications_household_id'))
        batch_op.drop_index(batch_op.f('ix_notifications_community_id'))
    op.drop_table('notifications')
