"""hours between deployments: trusted issuers (federation_issuers), the vouchers issued here
(issued_vouchers), the vouchers of others redeemed here (redeemed_vouchers, once per issuer and id), and
the counterparties' signed statements of what they redeemed (federation_statements)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('federation_issuers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('origin', sa.String(length=100), nullable=False),
    sa.Column('public_key', sa.String(length=64), nullable=False),
    sa.Column('key_id', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_federation_issuers_created_by_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_federation_issuers')),
    sa.UniqueConstraint('origin', 'public_key', name=op.f('uq_federation_issuers_origin'))
    )
    with op.batch_alter_table('federation_issuers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_federation_issuers_origin'), ['origin'], unique=False)

    op.create_table('issued_vouchers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('voucher_id', sa.String(length=32), nullable=False),
    sa.Column('resident_id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('audience', sa.String(length=100), nullable=False),
    sa.Column('minutes', sa.Integer(), nullable=False),
    sa.Column('issued_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.Column('transaction_id', sa.BigInteger(), nullable=False),
    sa.Column('redeemed_at', sa.DateTime(), nullable=True),
    sa.Column('returned_at', sa.DateTime(), nullable=True),
    sa.Column('return_transaction_id', sa.BigInteger(), nullable=True),
    sa.Column('return_reason', sa.String(length=500), nullable=True),
    sa.CheckConstraint("(status IN ('expired', 'cancelled')) = (return_transaction_id IS NOT NULL)",
                       name=op.f('ck_issued_vouchers_returned_once')),
    sa.CheckConstraint("status IN ('issued', 'redeemed', 'expired', 'cancelled')",
                       name=op.f('ck_issued_vouchers_status')),
    sa.CheckConstraint('minutes > 0', name=op.f('ck_issued_vouchers_minutes_positive')),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_issued_vouchers_community_id_communities')),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_issued_vouchers_created_by_user_id_users')),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_issued_vouchers_resident_id_residents')),
    sa.ForeignKeyConstraint(['return_transaction_id'], ['ledger_transactions.id'], name=op.f('fk_issued_vouchers_return_transaction_id_ledger_transactions')),
    sa.ForeignKeyConstraint(['transaction_id'], ['ledger_transactions.id'], name=op.f('fk_issued_vouchers_transaction_id_ledger_transactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issued_vouchers')),
    sa.UniqueConstraint('voucher_id', name=op.f('uq_issued_vouchers_voucher_id'))
    )
    with op.batch_alter_table('issued_vouchers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_issued_vouchers_audience'), ['audience'], unique=False)
        batch_op.create_index(batch_op.f('ix_issued_vouchers_community_id'), ['community_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_issued_vouchers_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_issued_vouchers_resident_id'), ['resident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_issued_vouchers_status'), ['status'], unique=False)

    op.create_table('redeemed_vouchers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('issuer', sa.String(length=100), nullable=False),
    sa.Column('voucher_id', sa.String(length=32), nullable=False),
    sa.Column('resident_id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('minutes', sa.Integer(), nullable=False),
    sa.Column('issued_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('key_id', sa.String(length=8), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('redeemed_at', sa.DateTime(), nullable=False),
    sa.Column('redeemed_by_user_id', sa.Integer(), nullable=True),
    sa.Column('transaction_id', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('minutes > 0', name=op.f('ck_redeemed_vouchers_minutes_positive')),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_redeemed_vouchers_community_id_communities')),
    sa.ForeignKeyConstraint(['redeemed_by_user_id'], ['users.id'], name=op.f('fk_redeemed_vouchers_redeemed_by_user_id_users')),
    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], name=op.f('fk_redeemed_vouchers_resident_id_residents')),
    sa.ForeignKeyConstraint(['transaction_id'], ['ledger_transactions.id'], name=op.f('fk_redeemed_vouchers_transaction_id_ledger_transactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_redeemed_vouchers')),
    sa.UniqueConstraint('issuer', 'voucher_id', name=op.f('uq_redeemed_vouchers_issuer'))
    )
    with op.batch_alter_table('redeemed_vouchers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_redeemed_vouchers_community_id'), ['community_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_redeemed_vouchers_issuer'), ['issuer'], unique=False)
        batch_op.create_index(batch_op.f('ix_redeemed_vouchers_resident_id'), ['resident_id'], unique=False)

    op.create_table('federation_statements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('origin', sa.String(length=100), nullable=False),
    sa.Column('as_of', sa.DateTime(), nullable=False),
    sa.Column('key_id', sa.String(length=8), nullable=False),
    sa.Column('text_hash', sa.String(length=64), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('vouchers', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('received_by_user_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['received_by_user_id'], ['users.id'],
                            name=op.f('fk_federation_statements_received_by_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_federation_statements')),
    sa.UniqueConstraint('origin', 'as_of', 'text_hash', name=op.f('uq_federation_statements_origin'))
    )
    with op.batch_alter_table('federation_statements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_federation_statements_origin'), ['origin'], unique=False)

    # Trust given and vouchers redeemed are kept as the audit log is: the database refuses UPDATE and
    # DELETE (and TRUNCATE). A redemption that could be deleted could be made twice.
    from ledger import schema

    for table in ("federation_issuers", "redeemed_vouchers", "federation_statements"):
        for statement in schema.append_only_guard(op.get_bind().dialect.name, table):
            op.execute(statement)


def downgrade():
    with op.batch_alter_table('federation_statements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_federation_statements_origin'))

    op.drop_table('federation_statements')
    with op.batch_alter_table('redeemed_vouchers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_redeemed_vouchers_resident_id'))
        batch_op.drop_index(batch_op.f('ix_redeemed_vouchers_issuer'))
        batch_op.drop_index(batch_op.f('ix_redeemed_vouchers_community_id'))

    op.drop_table('redeemed_vouchers')
    with op.batch_alter_table('issued_vouchers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_issued_vouchers_status'))
        batch_op.drop_index(batch_op.f('ix_issued_vouchers_resident_id'))
        batch_op.drop_index(batch_op.f('ix_issued_vouchers_expires_at'))
        batch_op.drop_index(batch_op.f('ix_issued_vouchers_community_id'))
        batch_op.drop_index(batch_op.f('ix_issued_vouchers_audience'))

    op.drop_table('issued_vouchers')
    with op.batch_alter_table('federation_issuers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_federation_issuers_origin'))

    op.drop_table('federation_issuers')
