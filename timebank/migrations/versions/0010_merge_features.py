"""Join the feature branches (earning and reports, shop, audit) into one head.

The features were built side by side, each branching from 0001; from here on there is one line of
migrations again, so ``timebank db migrate`` and ``timebank db upgrade`` need no ``heads``.

Revision ID: 0010
Revises: 0003, 0004, 0007
Create Date: 2026-11-24
"""

revision = "0010"
down_revision = ("0003", "0004", "0007")
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
