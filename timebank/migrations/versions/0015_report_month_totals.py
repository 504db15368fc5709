"""reports: each community's totals at the end of each ended month (report_month_totals), so the
monthly report starts from the nearest month instead of re-reading the ledger's history

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'report_month_totals',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('community_id', sa.Integer(), nullable=False),
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('ends_at', sa.DateTime(), nullable=False),
        sa.Column('households_points', sa.BigInteger(), nullable=False),
        sa.Column('residents_minutes', sa.BigInteger(), nullable=False),
        sa.Column('pool_minutes', sa.BigInteger(), nullable=False),
        sa.Column('computed_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint('length(month) = 7', name=op.f('ck_report_month_totals_month_format')),
        sa.ForeignKeyConstraint(['community_id'], ['communities.id'],
                                name=op.f('fk_report_month_totals_community_id_communities')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_report_month_totals')),
        sa.UniqueConstraint('community_id', 'month', name='uq_report_month_totals_community_month'),
    )
    with op.batch_alter_table('report_month_totals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_month_totals_community_id'), ['community_id'], unique=False)


def downgrade():
    with op.batch_alter_table('report_month_totals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_month_totals_community_id'))
    op.drop_table('report_month_totals')
