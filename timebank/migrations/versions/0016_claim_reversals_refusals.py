"""claim_reversals: a posted claim taken back by the committee (one per claim, append-only);
refusals: refused insider attempts, recorded after their request (append-only)

The claims table keeps its status check: a reversed claim's row stays ``posted`` and its reversal
is a row of its own (rebuilding claims on SQLite to widen the check would be refused by the foreign
keys of claim_events and checkins to it).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('claim_reversals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('claim_id', sa.Integer(), nullable=False),
    sa.Column('transaction_id', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['claim_id'], ['claims.id'], name=op.f('fk_claim_reversals_claim_id_claims')),
    sa.ForeignKeyConstraint(['transaction_id'], ['ledger_transactions.id'],
                            name=op.f('fk_claim_reversals_transaction_id_ledger_transactions')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_claim_reversals_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_claim_reversals')),
    sa.UniqueConstraint('claim_id', name=op.f('uq_claim_reversals_claim_id')),
    sa.UniqueConstraint('transaction_id', name=op.f('uq_claim_reversals_transaction_id'))
    )
    with op.batch_alter_table('claim_reversals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_claim_reversals_created_at'), ['created_at'], unique=False)

    op.create_table('refusals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('community_id', sa.Integer(), nullable=True),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('path', sa.String(length=200), nullable=False),
    sa.Column('detail', sa.String(length=500), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_refusals_community_id_communities')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_refusals_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refusals'))
    )
    with op.batch_alter_table('refusals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refusals_code'), ['code'], unique=False)
        batch_op.create_index(batch_op.f('ix_refusals_community_id'), ['community_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_refusals_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_refusals_user_id'), ['user_id'], unique=False)

    from ledger import schema

    bind = op.get_bind()
    for table in ('claim_reversals', 'refusals'):
        for statement in schema.append_only_guard(bind.dialect.name, table):
            op.execute(statement)


def downgrade():
    with op.batch_alter_table('refusals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refusals_user_id'))
        batch_op.drop_index(batch_op.f('ix_refusals_created_at'))
        batch_op.drop_index(batch_op.f('ix_refusals_community_id'))
        batch_op.drop_index(batch_op.f('ix_refusals_code'))
    op.drop_table('refusals')
    with op.batch_alter_table('claim_reversals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_claim_reversals_created_at'))
    op.drop_table('claim_reversals')
