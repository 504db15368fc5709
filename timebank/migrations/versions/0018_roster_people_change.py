"""people change: residents.active and left_at (a resident who left or died), and the append-only
history of households' care labels (care_label_changes)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ALTER TABLE ADD COLUMN on both databases: a batch operation would rebuild the table on
    # SQLite, which the foreign keys to residents refuse once there are rows (a live roster).
    op.add_column('residents', sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False))
    op.add_column('residents', sa.Column('left_at', sa.DateTime(), nullable=True))

    op.create_table('care_label_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('household_id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('changed_at', sa.DateTime(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('from_color', sa.String(length=8), nullable=False),
    sa.Column('to_color', sa.String(length=8), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.CheckConstraint("from_color IN ('red', 'yellow', 'green')", name=op.f('ck_care_label_changes_from_color')),
    sa.CheckConstraint("to_color IN ('red', 'yellow', 'green')", name=op.f('ck_care_label_changes_to_color')),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'],
                            name=op.f('fk_care_label_changes_community_id_communities')),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'],
                            name=op.f('fk_care_label_changes_household_id_households')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_care_label_changes_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_care_label_changes'))
    )
    with op.batch_alter_table('care_label_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_care_label_changes_household_id'), ['household_id'], unique=False)

    # The history is kept as the audit log is: the database refuses UPDATE and DELETE (and TRUNCATE).
    from ledger import schema

    for statement in schema.append_only_guard(op.get_bind().dialect.name, "care_label_changes"):
        op.execute(statement)


def downgrade():
    with op.batch_alter_table('care_label_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_care_label_changes_household_id'))
    op.drop_table('care_label_changes')
    with op.batch_alter_table('residents', schema=None) as batch_op:
        batch_op.drop_column('left_at')
        batch_op.drop_column('active')
