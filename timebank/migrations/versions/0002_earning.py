"""earning: rules and versions, claims and their history, tasks and check-ins, help requests, grids,
scheduler lease

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

"""
import sqlalchemy as sa
from alembic import op

from ledger.schema import append_only_guard

# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

#: Tables that only grow: the history of a claim is never edited.
APPEND_ONLY = ("claim_events",)


def upgrade():
    op.create_table('scheduler_leases',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('acquired_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_scheduler_leases'))
    )
    op.create_table('rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_rules_community_id_communities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rules')),
    sa.UniqueConstraint('community_id', 'code', name='uq_rules_community_code')
    )
    op.create_index(op.f('ix_rules_community_id'), 'rules', ['community_id'], unique=False)
    op.create_table('grids',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('worker_user_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_grids_community_id_communities')),
    sa.ForeignKeyConstraint(['worker_user_id'], ['users.id'], name=op.f('fk_grids_worker_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grids')),
    sa.UniqueConstraint('community_id', 'code', name='uq_grids_community_code')
    )
    op.create_index(op.f('ix_grids_community_id'), 'grids', ['community_id'], unique=False)
    op.create_table('help_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('requester_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('minutes', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('volunteer_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.Column('accepted_at', sa.DateTime(), nullable=True),
    sa.Column('completed_at', sa.DateTime(), nullable=True),
    sa.Column('completed_by_user_id', sa.Integer(), nullable=True),
    sa.Column('paid_by', sa.String(length=12), nullable=True),
    sa.Column('transaction_id', sa.BigInteger(), nullable=True),
    sa.CheckConstraint("status IN ('open', 'accepted', 'completed', 'cancelled')", name=op.f('ck_help_requests_status')),
    sa.CheckConstraint('minutes > 0', name=op.f('ck_help_requests_minutes_positive')),
    sa.CheckConstraint('volunteer_id IS NULL OR volunteer_id <> requester_id', name=op.f('ck_help_requests_not_self')),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_help_requests_community_id_communities')),
    sa.ForeignKeyConstraint(['completed_by_user_id'], ['users.id'], name=op.f('fk_help_requests_completed_by_user_id_users')),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_help_requests_created_by_user_id_users')),
    sa.ForeignKeyConstraint(['requester_id'], ['residents.id'], name=op.f('fk_help_requests_requester_id_residents')),
    sa.ForeignKeyConstraint(['transaction_id'], ['ledger_transactions.id'], name=op.f('fk_help_requests_transaction_id_ledger_transactions')),
    sa.ForeignKeyConstraint(['volunteer_id'], ['residents.id'], name=op.f('fk_help_requests_volunteer_id_residents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_help_requests'))
    )
    op.create_index(op.f('ix_help_requests_community_id'), 'help_requests', ['community_id'], unique=False)
    op.create_index(op.f('ix_help_requests_requester_id'), 'help_requests', ['requester_id'], unique=False)
    op.create_index(op.f('ix_help_requests_status'), 'help_requests', ['status'], unique=False)
    op.create_index(op.f('ix_help_requests_volunteer_id'), 'help_requests', ['volunteer_id'], unique=False)
    op.create_table('rule_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('minutes', sa.Integer(), nullable=False),
    sa.Column('review', sa.String(length=8), nullable=False),
    sa.Column('publicity_days', sa.Integer(), nullable=False),
    sa.Column('cap_period', sa.String(length=8), nullable=True),
    sa.Column('cap_max_points', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('effective_from', sa.DateTime(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("cap_period IS NULL OR cap_period IN ('day', 'week', 'month', 'year')", name=op.f('ck_rule_versions_cap_period')),
    sa.CheckConstraint("category IN ('volunteer', 'red', 'moral', 'neighbour_help')", name=op.f('ck_rule_versions_category')),
    sa.CheckConstraint("review IN ('auto', 'review')", name=op.f('ck_rule_versions_review')),
    sa.CheckConstraint('(cap_period IS NULL) = (cap_max_points IS NULL)', name=op.f('ck_rule_versions_cap_complete')),
    sa.CheckConstraint('cap_max_points IS NULL OR cap_max_points > 0', name=op.f('ck_rule_versions_cap_positive')),
    sa.CheckConstraint('points >= 0 AND minutes >= 0 AND points + minutes > 0', name=op.f('ck_rule_versions_worth')),
    sa.CheckConstraint('publicity_days >= 0', name=op.f('ck_rule_versions_publicity_days')),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_rule_versions_created_by_user_id_users')),
    sa.ForeignKeyConstraint(['rule_id'], ['rules.id'], name=op.f('fk_rule_versions_rule_id_rules')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rule_versions')),
    sa.UniqueConstraint('rule_id', 'number', name='uq_rule_versions_rule_number')
    )
    op.create_index(op.f('ix_rule_versions_effective_from'), 'rule_versions', ['effective_from'], unique=False)
    op.create_index(op.f('ix_rule_versions_rule_id'), 'rule_versions', ['rule_id'], unique=False)
    op.create_table('tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('starts_at', sa.DateTime(), nullable=False),
    sa.Column('ends_at', sa.DateTime(), nullable=False),
    sa.Column('slots', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_tasks_window')),
    sa.CheckConstraint('slots > 0', name=op.f('ck_tasks_slots_positive')),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_tasks_community_id_communities')),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_tasks_created_by_user_id_users')),
    sa.ForeignKeyConstraint(['rule_id'], ['rules.id'], name=op.f('fk_tasks_rule_id_rules')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tasks'))
    )
    op.create_index(op.f('ix_tasks_community_id'), 'tasks', ['community_id'], unique=False)
    op.create_index(op.f('ix_tasks_rule_id'), 'tasks', ['rule_id'], unique=False)
    op.create_table('claims',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('rule_version_id', sa.Integer(), nullable=False),
    sa.Column('resident_id', sa.Integer(), nullable=False),
    sa.Column('household_id', sa.Integer(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('minutes', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('entered_by_user_id', sa.Integer(), nullable=True),
    sa.Column('entered_for_resident', sa.Boolean(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('reviewed_by_user_id', sa.Integer(), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(), nullable=True),
    sa.Column('publicity_ends_at', sa.DateTime(), nullable=True),
    sa.Column('rejection_reason', sa.Text(), nullable=True),
    sa.Column('transaction_id', sa.BigInteger(), nullable=True),
    sa.Column('posted_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("(status = 'posted') = (transaction_id IS NOT NULL)", name=op.f('ck_claims_posted_has_transaction')),
    sa.CheckConstraint("status IN ('pending', 'publicized', 'posted', 'rejected')", name=op.f('ck_claims_status')),
    sa.CheckConstraint('points >= 0 AND minutes >= 0', name=op.f('ck_claims_worth')),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_claims_community_id_communities')),
    sa.ForeignKeyConstraint(['entered_by_user_id'], ['users.id'], name=op.f('fk_claims_entered_by_user_id_users')),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_claims_household_id_households')),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_claims_resident_id_residents')),
    sa.ForeignKeyConstraint(['reviewed_by_user_id'], ['users.id'], name=op.f('fk_claims_reviewed_by_user_id_users')),
    sa.ForeignKeyConstraint(['rule_id'], ['rules.id'], name=op.f('fk_claims_rule_id_rules')),
    sa.ForeignKeyConstraint(['rule_version_id'], ['rule_versions.id'], name=op.f('fk_claims_rule_version_id_rule_versions')),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_claims_task_id_tasks')),
    sa.ForeignKeyConstraint(['transaction_id'], ['ledger_transactions.id'], name=op.f('fk_claims_transaction_id_ledger_transactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_claims'))
    )
    op.create_index(op.f('ix_claims_community_id'), 'claims', ['community_id'], unique=False)
    op.create_index(op.f('ix_claims_created_at'), 'claims', ['created_at'], unique=False)
    op.create_index(op.f('ix_claims_household_id'), 'claims', ['household_id'], unique=False)
    op.create_index(op.f('ix_claims_publicity_ends_at'), 'claims', ['publicity_ends_at'], unique=False)
    op.create_index(op.f('ix_claims_resident_id'), 'claims', ['resident_id'], unique=False)
    op.create_index(op.f('ix_claims_rule_id'), 'claims', ['rule_id'], unique=False)
    op.create_index(op.f('ix_claims_status'), 'claims', ['status'], unique=False)
    op.create_index(op.f('ix_claims_task_id'), 'claims', ['task_id'], unique=False)
    op.create_table('checkins',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('resident_id', sa.Integer(), nullable=False),
    sa.Column('claim_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['claim_id'], ['claims.id'], name=op.f('fk_checkins_claim_id_claims')),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_checkins_resident_id_residents')),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_checkins_task_id_tasks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkins')),
    sa.UniqueConstraint('task_id', 'resident_id', name='uq_checkins_task_resident')
    )
    op.create_index(op.f('ix_checkins_resident_id'), 'checkins', ['resident_id'], unique=False)
    op.create_index(op.f('ix_checkins_task_id'), 'checkins', ['task_id'], unique=False)
    op.create_table('claim_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('claim_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['claim_id'], ['claims.id'], name=op.f('fk_claim_events_claim_id_claims')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_claim_events_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_claim_events'))
    )
    op.create_index(op.f('ix_claim_events_claim_id'), 'claim_events', ['claim_id'], unique=False)
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        for statement in append_only_guard(dialect, table):
            op.execute(statement)


def downgrade():
    op.drop_index(op.f('ix_claim_events_claim_id'), table_name='claim_events')
    op.drop_table('claim_events')
    op.drop_index(op.f('ix_checkins_task_id'), table_name='checkins')
    op.drop_index(op.f('ix_checkins_resident_id'), table_name='checkins')
    op.drop_table('checkins')
    op.drop_index(op.f('ix_claims_task_id'), table_name='claims')
    op.drop_index(op.f('ix_claims_status'), table_name='claims')
    op.drop_index(op.f('ix_claims_rule_id'), table_name='claims')
    op.drop_index(op.f('ix_claims_resident_id'), table_name='claims')
    op.drop_index(op.f('ix_claims_publicity_ends_at'), table_name='claims')
    op.drop_index(op.f('ix_claims_household_id'), table_name='claims')
    op.drop_index(op.f('ix_claims_created_at'), table_name='claims')
    op.drop_index(op.f('ix_claims_community_id'), table_name='claims')
    op.drop_table('claims')
    op.drop_index(op.f('ix_tasks_rule_id'), table_name='tasks')
    op.drop_index(op.f('ix_tasks_community_id'), table_name='tasks')
    op.drop_table('tasks')
    op.drop_index(op.f('ix_rule_versions_rule_id'), table_name='rule_versions')
    op.drop_index(op.f('ix_rule_versions_effective_from'), table_name='rule_versions')
    op.drop_table('rule_versions')
    op.drop_index(op.f('ix_help_requests_volunteer_id'), table_name='help_requests')
    op.drop_index(op.f('ix_help_requests_status'), table_name='help_requests')
    op.drop_index(op.f('ix_help_requests_requester_id'), table_name='help_requests')
    op.drop_index(op.f('ix_help_requests_community_id'), table_name='help_requests')
    op.drop_table('help_requests')
    op.drop_index(op.f('ix_grids_community_id'), table_name='grids')
    op.drop_table('grids')
    op.drop_index(op.f('ix_rules_community_id'), table_name='rules')
    op.drop_table('rules')
    op.drop_table('scheduler_leases')
