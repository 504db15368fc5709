"""Staff are people: users.phone and users.person_key, one active staff login per person and
community (a partial unique index), and one-time passwords (password_change_required,
one_time_expires_at, one_time_used_at)

Existing logins linked to a resident get the resident's phone and person; of several active staff
logins of one person in one community, the oldest keeps the person and the others are left without
one (they may read, and approve, sign and void nothing until an admin links them), so the index can
be built and the duplicates are visible in the logins list.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

STAFF_ROLES = ('committee', 'grid_worker', 'clerk', 'supervisor')
WHERE = ("person_key IS NOT NULL AND active AND role IN ('committee', 'grid_worker', 'clerk', 'supervisor')")


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('person_key', sa.String(length=48), nullable=True))
        batch_op.add_column(sa.Column('password_change_required', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
        batch_op.add_column(sa.Column('one_time_expires_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('one_time_used_at', sa.DateTime(), nullable=True))

    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT u.id, u.role, u.community_id, u.active, u.resident_id, r.phone FROM users u"
        " JOIN residents r ON r.id = u.resident_id WHERE u.role <> 'admin' ORDER BY u.id")).fetchall()
    taken = set()
    for user_id, role, community_id, active, resident_id, phone in rows:
        key = f"phone:{phone}" if phone else f"resident:{resident_id}"
        if role in STAFF_ROLES and active:
            if (community_id, key) in taken:
                key = None  # a second staff login of the same person: left without a person
            else:
                taken.add((community_id, key))
        conn.execute(sa.text("UPDATE users SET phone = :phone, person_key = :key WHERE id = :id"),
                     {"phone": phone, "key": key, "id": user_id})

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index('uq_users_staff_person', ['community_id', 'person_key'], unique=True,
                              sqlite_where=sa.text(WHERE), postgresql_where=sa.text(WHERE))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index('uq_users_staff_person')
        batch_op.drop_column('one_time_used_at')
        batch_op.drop_column('one_time_expires_at')
        batch_op.drop_column('password_change_required')
        batch_op.drop_column('person_key')
        batch_op.drop_column('phone')
