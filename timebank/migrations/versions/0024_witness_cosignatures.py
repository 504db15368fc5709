"""witnesses: the witnesses trusted to cosign checkpoints (ledger_witnesses) and their cosignatures
(checkpoint_cosignatures), both append-only

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-10

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('ledger_witnesses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('public_key', sa.String(length=64), nullable=False),
    sa.Column('key_id', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_witnesses')),
    sa.UniqueConstraint('name', name=op.f('uq_ledger_witnesses_name')),
    sa.UniqueConstraint('public_key', name=op.f('uq_ledger_witnesses_public_key'))
    )
    op.create_table('checkpoint_cosignatures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('witness_id', sa.Integer(), nullable=False),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.Column('signature', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('timestamp >= 0', name=op.f('ck_checkpoint_cosignatures_timestamp_not_negative')),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['ledger_checkpoints.id'],
                            name=op.f('fk_checkpoint_cosignatures_checkpoint_id_ledger_checkpoints')),
    sa.ForeignKeyConstraint(['witness_id'], ['ledger_witnesses.id'],
                            name=op.f('fk_checkpoint_cosignatures_witness_id_ledger_witnesses')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkpoint_cosignatures')),
    sa.UniqueConstraint('checkpoint_id', 'witness_id', name='uq_checkpoint_cosignatures_checkpoint_witness')
    )
    with op.batch_alter_table('checkpoint_cosignatures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkpoint_cosignatures_checkpoint_id'), ['checkpoint_id'], unique=False)

    # A witness's key and a cosignature are said once and never edited, as the checkpoints are.
    from ledger import schema

    for table in ('ledger_witnesses', 'checkpoint_cosignatures'):
        for statement in schema.append_only_guard(op.get_bind().dialect.name, table):
            op.execute(statement)


def downgrade():
    with op.batch_alter_table('checkpoint_cosignatures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkpoint_cosignatures_checkpoint_id'))
    op.drop_table('checkpoint_cosignatures')
    op.drop_table('ledger_witnesses')
