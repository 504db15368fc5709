"""teams for tasks: tasks.points_per (per member or per team), task_teams and task_team_members,
checkins.team_id (the team whose leader checked the resident in)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

_POINTS_PER = "points_per IN ('member', 'team')"


def upgrade():
    op.create_table('task_teams',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('leader_resident_id', sa.Integer(), nullable=False),
    sa.Column('household_id', sa.Integer(), nullable=True),
    sa.Column('claim_id', sa.Integer(), nullable=True),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('checked_in_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("kind IN ('household', 'group')", name=op.f('ck_task_teams_kind')),
    sa.CheckConstraint("(kind = 'household') = (household_id IS NOT NULL)",
                       name=op.f('ck_task_teams_household_kind')),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_task_teams_task_id_tasks')),
    sa.ForeignKeyConstraint(['leader_resident_id'], ['residents.id'],
                            name=op.f('fk_task_teams_leader_resident_id_residents')),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_task_teams_household_id_households')),
    sa.ForeignKeyConstraint(['claim_id'], ['claims.id'], name=op.f('fk_task_teams_claim_id_claims')),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_task_teams_created_by_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_teams')),
    sa.UniqueConstraint('task_id', 'household_id', name='uq_task_teams_task_household')
    )
    with op.batch_alter_table('task_teams', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_teams_task_id'), ['task_id'], unique=False)

    op.create_table('task_team_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('resident_id', sa.Integer(), nullable=False),
    sa.Column('added_by_user_id', sa.Integer(), nullable=True),
    sa.Column('joined_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['task_teams.id'], name=op.f('fk_task_team_members_team_id_task_teams')),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_task_team_members_task_id_tasks')),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'],
                            name=op.f('fk_task_team_members_resident_id_residents')),
    sa.ForeignKeyConstraint(['added_by_user_id'], ['users.id'],
                            name=op.f('fk_task_team_members_added_by_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_team_members')),
    sa.UniqueConstraint('task_id', 'resident_id', name='uq_task_team_members_task_resident')
    )
    with op.batch_alter_table('task_team_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_team_members_team_id'), ['team_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_team_members_resident_id'), ['resident_id'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.add_column('tasks', sa.Column('points_per', sa.String(length=8), server_default='member', nullable=False))
        op.execute(f"ALTER TABLE tasks ADD CONSTRAINT ck_tasks_points_per CHECK ({_POINTS_PER})")
        op.add_column('checkins', sa.Column('team_id', sa.Integer(), nullable=True))
        op.create_foreign_key(op.f('fk_checkins_team_id_task_teams'), 'checkins', 'task_teams', ['team_id'], ['id'])
    else:
        # SQLite adds the columns with their constraints in place (no table rebuild, which the foreign
        # keys of claims and check-ins to tasks would refuse once there are rows).
        op.execute("ALTER TABLE tasks ADD COLUMN points_per VARCHAR(8) DEFAULT 'member' NOT NULL"
                   f" CONSTRAINT ck_tasks_points_per CHECK ({_POINTS_PER})")
        op.execute("ALTER TABLE checkins ADD COLUMN team_id INTEGER"
                   " CONSTRAINT fk_checkins_team_id_task_teams REFERENCES task_teams (id)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(op.f('fk_checkins_team_id_task_teams'), 'checkins', type_='foreignkey')
        op.execute("ALTER TABLE tasks DROP CONSTRAINT ck_tasks_points_per")
        op.drop_column('checkins', 'team_id')
    else:
        # SQLite drops no column named by a foreign key: check-ins are rebuilt (nothing refers to them).
        with op.batch_alter_table('checkins', schema=None) as batch_op:
            batch_op.drop_column('team_id')
    # The column goes with its own CHECK constraint on SQLite.
    op.execute("ALTER TABLE tasks DROP COLUMN points_per")
    with op.batch_alter_table('task_team_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_team_members_resident_id'))
        batch_op.drop_index(batch_op.f('ix_task_team_members_team_id'))
    op.drop_table('task_team_members')
    with op.batch_alter_table('task_teams', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_teams_task_id'))
    op.drop_table('task_teams')
