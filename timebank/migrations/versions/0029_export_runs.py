"""export_runs: ledger exports made in the background, with their progress and file

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-04

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('export_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('fmt', sa.String(length=8), nullable=False),
    sa.Column('filters', sa.Text(), nullable=False),
    sa.Column('file_name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('rows_expected', sa.Integer(), nullable=False),
    sa.Column('rows_written', sa.Integer(), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("fmt IN ('csv', 'xlsx')", name=op.f('ck_export_runs_fmt')),
    sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed', 'expired')",
                       name=op.f('ck_export_runs_status')),
    sa.CheckConstraint('rows_written >= 0 AND rows_expected >= 0', name=op.f('ck_export_runs_rows')),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_export_runs_community_id_communities')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_export_runs_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_export_runs'))
    )
    with op.batch_alter_table('export_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_export_runs_community_id'), ['community_id'], unique=False)


def downgrade():
    with op.batch_alter_table('export_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_export_runs_community_id'))
    op.drop_table('export_runs')
