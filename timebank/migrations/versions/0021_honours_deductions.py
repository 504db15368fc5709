"""honours and deductions: the honour list (honours), awards with their half-yearly review
(honour_awards, append-only honour_events); deduction items with negative points (deduction_items),
deductions with what the wallet lost and what counted against the ranking score only (deductions,
append-only deduction_events); the committee's choice to publish the black list (ranking_settings)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('deduction_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('publicity_days', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('points < 0', name=op.f('ck_deduction_items_negative')),
    sa.CheckConstraint('publicity_days >= 0', name=op.f('ck_deduction_items_publicity_days')),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_deduction_items_community_id_communities')),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_deduction_items_created_by_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deduction_items')),
    sa.UniqueConstraint('community_id', 'code', name='uq_deduction_items_community_code')
    )
    with op.batch_alter_table('deduction_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deduction_items_community_id'), ['community_id'], unique=False)

    op.create_table('honours',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('publicity_days', sa.Integer(), nullable=False),
    sa.Column('term_months', sa.Integer(), nullable=False),
    sa.Column('review_months', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('points >= 0', name=op.f('ck_honours_points')),
    sa.CheckConstraint('publicity_days >= 0', name=op.f('ck_honours_publicity_days')),
    sa.CheckConstraint('review_months > 0', name=op.f('ck_honours_review_months')),
    sa.CheckConstraint('term_months > 0', name=op.f('ck_honours_term_months')),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_honours_community_id_communities')),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_honours_created_by_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_honours')),
    sa.UniqueConstraint('community_id', 'code', name='uq_honours_community_code')
    )
    with op.batch_alter_table('honours', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_honours_community_id'), ['community_id'], unique=False)

    op.create_table('ranking_settings',
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('publish_black_list', sa.Boolean(), nullable=False),
    sa.Column('changed_by_user_id', sa.Integer(), nullable=True),
    sa.Column('changed_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['changed_by_user_id'], ['users.id'], name=op.f('fk_ranking_settings_changed_by_user_id_users')),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_ranking_settings_community_id_communities')),
    sa.PrimaryKeyConstraint('community_id', name=op.f('pk_ranking_settings'))
    )
    op.create_table('deductions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('household_id', sa.Integer(), nullable=False),
    sa.Column('resident_id', sa.Integer(), nullable=True),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('entered_by_user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('reviewed_by_user_id', sa.Integer(), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(), nullable=True),
    sa.Column('publicity_ends_at', sa.DateTime(), nullable=True),
    sa.Column('rejection_reason', sa.Text(), nullable=True),
    sa.Column('applied_at', sa.DateTime(), nullable=True),
    sa.Column('wallet_points', sa.Integer(), nullable=False),
    sa.Column('ranking_points', sa.Integer(), nullable=False),
    sa.Column('transaction_id', sa.BigInteger(), nullable=True),
    sa.CheckConstraint("(status = 'applied') = (applied_at IS NOT NULL)", name=op.f('ck_deductions_applied_at')),
    sa.CheckConstraint("status <> 'applied' OR wallet_points + ranking_points + points = 0", name=op.f('ck_deductions_parts_sum')),
    sa.CheckConstraint("status IN ('pending', 'publicized', 'applied', 'rejected')", name=op.f('ck_deductions_status')),
    sa.CheckConstraint('(transaction_id IS NULL) = (wallet_points = 0)', name=op.f('ck_deductions_transaction_when_taken')),
    sa.CheckConstraint('points < 0', name=op.f('ck_deductions_negative')),
    sa.CheckConstraint('wallet_points >= 0 AND ranking_points >= 0', name=op.f('ck_deductions_parts')),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_deductions_community_id_communities')),
    sa.ForeignKeyConstraint(['entered_by_user_id'], ['users.id'], name=op.f('fk_deductions_entered_by_user_id_users')),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_deductions_household_id_households')),
    sa.ForeignKeyConstraint(['item_id'], ['deduction_items.id'], name=op.f('fk_deductions_item_id_deduction_items')),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_deductions_resident_id_residents')),
    sa.ForeignKeyConstraint(['reviewed_by_user_id'], ['users.id'], name=op.f('fk_deductions_reviewed_by_user_id_users')),
    sa.ForeignKeyConstraint(['transaction_id'], ['ledger_transactions.id'], name=op.f('fk_deductions_transaction_id_ledger_transactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deductions')),
    sa.UniqueConstraint('transaction_id', name=op.f('uq_deductions_transaction_id'))
    )
    with op.batch_alter_table('deductions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deductions_applied_at'), ['applied_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_deductions_community_id'), ['community_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deductions_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_deductions_household_id'), ['household_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deductions_item_id'), ['item_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deductions_publicity_ends_at'), ['publicity_ends_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_deductions_status'), ['status'], unique=False)

    op.create_table('honour_awards',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('honour_id', sa.Integer(), nullable=False),
    sa.Column('household_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('term_months', sa.Integer(), nullable=False),
    sa.Column('review_months', sa.Integer(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('proposed_by_user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('approved_by_user_id', sa.Integer(), nullable=True),
    sa.Column('approved_at', sa.DateTime(), nullable=True),
    sa.Column('publicity_ends_at', sa.DateTime(), nullable=True),
    sa.Column('rejection_reason', sa.Text(), nullable=True),
    sa.Column('held_from', sa.DateTime(), nullable=True),
    sa.Column('held_until', sa.DateTime(), nullable=True),
    sa.Column('next_review_at', sa.DateTime(), nullable=True),
    sa.Column('withdrawal_reason', sa.Text(), nullable=True),
    sa.Column('withdrawn_by_user_id', sa.Integer(), nullable=True),
    sa.Column('withdrawn_at', sa.DateTime(), nullable=True),
    sa.Column('transaction_id', sa.BigInteger(), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'publicized', 'held', 'under_review', 'withdrawn', 'rejected', 'ended')", name=op.f('ck_honour_awards_status')),
    sa.CheckConstraint("status NOT IN ('held', 'under_review', 'withdrawn', 'ended') OR (held_from IS NOT NULL AND held_until IS NOT NULL)", name=op.f('ck_honour_awards_held_has_term')),
    sa.CheckConstraint('points >= 0', name=op.f('ck_honour_awards_points')),
    sa.CheckConstraint('review_months > 0', name=op.f('ck_honour_awards_review_months')),
    sa.CheckConstraint('transaction_id IS NULL OR points > 0', name=op.f('ck_honour_awards_transaction_has_points')),
    sa.ForeignKeyConstraint(['approved_by_user_id'], ['users.id'], name=op.f('fk_honour_awards_approved_by_user_id_users')),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_honour_awards_community_id_communities')),
    sa.ForeignKeyConstraint(['honour_id'], ['honours.id'], name=op.f('fk_honour_awards_honour_id_honours')),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_honour_awards_household_id_households')),
    sa.ForeignKeyConstraint(['proposed_by_user_id'], ['users.id'], name=op.f('fk_honour_awards_proposed_by_user_id_users')),
    sa.ForeignKeyConstraint(['transaction_id'], ['ledger_transactions.id'], name=op.f('fk_honour_awards_transaction_id_ledger_transactions')),
    sa.ForeignKeyConstraint(['withdrawn_by_user_id'], ['users.id'], name=op.f('fk_honour_awards_withdrawn_by_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_honour_awards')),
    sa.UniqueConstraint('transaction_id', name=op.f('uq_honour_awards_transaction_id'))
    )
    with op.batch_alter_table('honour_awards', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_honour_awards_community_id'), ['community_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_honour_awards_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_honour_awards_held_until'), ['held_until'], unique=False)
        batch_op.create_index(batch_op.f('ix_honour_awards_honour_id'), ['honour_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_honour_awards_household_id'), ['household_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_honour_awards_next_review_at'), ['next_review_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_honour_awards_publicity_ends_at'), ['publicity_ends_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_honour_awards_status'), ['status'], unique=False)

    op.create_table('deduction_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('deduction_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['deduction_id'], ['deductions.id'], name=op.f('fk_deduction_events_deduction_id_deductions')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_deduction_events_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deduction_events'))
    )
    with op.batch_alter_table('deduction_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deduction_events_deduction_id'), ['deduction_id'], unique=False)

    op.create_table('honour_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('award_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['award_id'], ['honour_awards.id'], name=op.f('fk_honour_events_award_id_honour_awards')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_honour_events_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_honour_events'))
    )
    with op.batch_alter_table('honour_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_honour_events_award_id'), ['award_id'], unique=False)

    # The histories are kept as the audit log is: the database refuses UPDATE and DELETE (and TRUNCATE).
    from ledger import schema

    bind = op.get_bind()
    for table in ('honour_events', 'deduction_events'):
        for statement in schema.append_only_guard(bind.dialect.name, table):
            op.execute(statement)


def downgrade():
    with op.batch_alter_table('honour_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_honour_events_award_id'))

    op.drop_table('honour_events')
    with op.batch_alter_table('deduction_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deduction_events_deduction_id'))

    op.drop_table('deduction_events')
    with op.batch_alter_table('honour_awards', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_honour_awards_status'))
        batch_op.drop_index(batch_op.f('ix_honour_awards_publicity_ends_at'))
        batch_op.drop_index(batch_op.f('ix_honour_awards_next_review_at'))
        batch_op.drop_index(batch_op.f('ix_honour_awards_household_id'))
        batch_op.drop_index(batch_op.f('ix_honour_awards_honour_id'))
        batch_op.drop_index(batch_op.f('ix_honour_awards_held_until'))
        batch_op.drop_index(batch_op.f('ix_honour_awards_created_at'))
        batch_op.drop_index(batch_op.f('ix_honour_awards_community_id'))

    op.drop_table('honour_awards')
    with op.batch_alter_table('deductions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deductions_status'))
        batch_op.drop_index(batch_op.f('ix_deductions_publicity_ends_at'))
        batch_op.drop_index(batch_op.f('ix_deductions_item_id'))
        batch_op.drop_index(batch_op.f('ix_deductions_household_id'))
        batch_op.drop_index(batch_op.f('ix_deductions_created_at'))
        batch_op.drop_index(batch_op.f('ix_deductions_community_id'))
        batch_op.drop_index(batch_op.f('ix_deductions_applied_at'))

    op.drop_table('deductions')
    op.drop_table('ranking_settings')
    with op.batch_alter_table('honours', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_honours_community_id'))

    op.drop_table('honours')
    with op.batch_alter_table('deduction_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deduction_items_community_id'))

    op.drop_table('deduction_items')
