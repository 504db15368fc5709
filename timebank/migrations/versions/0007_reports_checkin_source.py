"""reports: where a check-in came from (client address and device), for the anomaly report

Revision ID: 0007
Revises: 0002
Create Date: 2026-11-24

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0002'
branch_labels = None
# The check-ins table is created by the earning migration.
depends_on = None


def upgrade():
    with op.batch_alter_table('checkins', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('device', sa.String(length=300), nullable=True))
        batch_op.create_index(batch_op.f('ix_checkins_address'), ['address'], unique=False)


def downgrade():
    with op.batch_alter_table('checkins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkins_address'))
        batch_op.drop_column('device')
        batch_op.drop_column('address')
