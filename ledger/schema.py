"""Database triggers that make the ledger's rules hold whatever code writes to it.

Installed by the migrations (and by :func:`install` for any other set-up). They:

* refuse UPDATE and DELETE on transactions and postings, and TRUNCATE on PostgreSQL;
* refuse a posting whose unit differs from its account's, and a posting added to a transaction
  that is already written (sealed);
* refuse a transaction row unless at least two postings for it exist and they sum to zero per unit;
* refuse a reversal of a reversal;
* keep each account's cached balance equal to the sum of its postings (the balance column's CHECK
  constraint then refuses a wallet below zero);
* refuse changes to an account's code, unit or negative flag, and deletion of accounts.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

SQLITE_DDL = [
    """CREATE TRIGGER ledger_transactions_no_update BEFORE UPDATE ON ledger_transactions
    BEGIN SELECT RAISE(ABORT, 'ledger_transactions is append-only'); END""",
    """CREATE TRIGGER ledger_transactions_no_delete BEFORE DELETE ON ledger_transactions
    BEGIN SELECT RAISE(ABORT, 'ledger_transactions is append-only'); END""",
    """CREATE TRIGGER ledger_postings_no_update BEFORE UPDATE ON ledger_postings
    BEGIN SELECT RAISE(ABORT, 'ledger_postings is append-only'); END""",
    """CREATE TRIGGER ledger_postings_no_delete BEFORE DELETE ON ledger_postings
    BEGIN SELECT RAISE(ABORT, 'ledger_postings is append-only'); END""",
    """CREATE TRIGGER ledger_postings_sealed BEFORE INSERT ON ledger_postings
    WHEN EXISTS (SELECT 1 FROM ledger_transactions WHERE id = NEW.transaction_id)
    BEGIN SELECT RAISE(ABORT, 'ledger transaction is already sealed'); END""",
    """CREATE TRIGGER ledger_postings_unit BEFORE INSERT ON ledger_postings
    WHEN (SELECT unit FROM ledger_accounts WHERE id = NEW.account_id) IS NOT NEW.unit
    BEGIN SELECT RAISE(ABORT, 'posting unit differs from its account'); END""",
    """CREATE TRIGGER ledger_postings_balance AFTER INSERT ON ledger_postings
    BEGIN UPDATE ledger_accounts SET balance = balance + NEW.amount WHERE id = NEW.account_id; END""",
    """CREATE TRIGGER ledger_transactions_balanced BEFORE INSERT ON ledger_transactions
    WHEN (SELECT count(*) FROM ledger_postings WHERE transaction_id = NEW.id) < 2
      OR EXISTS (SELECT 1 FROM ledger_postings WHERE transaction_id = NEW.id
                 GROUP BY unit HAVING sum(amount) <> 0)
    BEGIN SELECT RAISE(ABORT, 'ledger transaction does not balance'); END""",
    """CREATE TRIGGER ledger_transactions_no_reverse_reversal BEFORE INSERT ON ledger_transactions
    WHEN NEW.reverses_id IS NOT NULL AND
      (SELECT reverses_id FROM ledger_transactions WHERE id = NEW.reverses_id) IS NOT NULL
    BEGIN SELECT RAISE(ABORT, 'a reversal cannot be reversed'); END""",
    """CREATE TRIGGER ledger_accounts_fixed BEFORE UPDATE OF code, unit, allow_negative ON ledger_accounts
    WHEN NEW.code IS NOT OLD.code OR NEW.unit IS NOT OLD.unit OR NEW.allow_negative IS NOT OLD.allow_negative
    BEGIN SELECT RAISE(ABORT, 'ledger account identity is fixed'); END""",
    """CREATE TRIGGER ledger_accounts_no_delete BEFORE DELETE ON ledger_accounts
    BEGIN SELECT RAISE(ABORT, 'ledger accounts are never deleted'); END""",
]

POSTGRES_DDL = [
    """CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger AS $$
    BEGIN
      RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' is append-only', ERRCODE = 'restrict_violation';
    END;
    $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER ledger_transactions_no_change BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()""",
    """CREATE TRIGGER ledger_transactions_no_truncate BEFORE TRUNCATE ON ledger_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()""",
    """CREATE TRIGGER ledger_postings_no_change BEFORE UPDATE OR DELETE ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()""",
    """CREATE TRIGGER ledger_postings_no_truncate BEFORE TRUNCATE ON ledger_postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()""",
    """CREATE TRIGGER ledger_accounts_no_delete BEFORE DELETE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()""",
    """CREATE OR REPLACE FUNCTION ledger_posting_insert() RETURNS trigger AS $$
    BEGIN
      IF EXISTS (SELECT 1 FROM ledger_transactions WHERE id = NEW.transaction_id) THEN
        RAISE EXCEPTION 'ledger transaction is already sealed' USING ERRCODE = 'restrict_violation';
      END IF;
      IF (SELECT unit FROM ledger_accounts WHERE id = NEW.account_id) IS DISTINCT FROM NEW.unit THEN
        RAISE EXCEPTION 'posting unit differs from its account' USING ERRCODE = 'restrict_violation';
      END IF;
      UPDATE ledger_accounts SET balance = balance + NEW.amount WHERE id = NEW.account_id;
      RETURN NEW;
    END;
    $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER ledger_postings_insert BEFORE INSERT ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION ledger_posting_insert()""",
    """CREATE OR REPLACE FUNCTION ledger_transaction_insert() RETURNS trigger AS $$
    BEGIN
      IF (SELECT count(*) FROM ledger_postings WHERE transaction_id = NEW.id) < 2
         OR EXISTS (SELECT 1 FROM ledger_postings WHERE transaction_id = NEW.id
                    GROUP BY unit HAVING sum(amount) <> 0) THEN
        RAISE EXCEPTION 'ledger transaction does not balance' USING ERRCODE = 'restrict_violation';
      END IF;
      IF NEW.reverses_id IS NOT NULL AND
         (SELECT reverses_id FROM ledger_transactions WHERE id = NEW.reverses_id) IS NOT NULL THEN
        RAISE EXCEPTION 'a reversal cannot be reversed' USING ERRCODE = 'restrict_violation';
      END IF;
      RETURN NEW;
    END;
    $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER ledger_transactions_insert BEFORE INSERT ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_transaction_insert()""",
    """CREATE OR REPLACE FUNCTION ledger_account_update() RETURNS trigger AS $$
    BEGIN
      IF NEW.code IS DISTINCT FROM OLD.code OR NEW.unit IS DISTINCT FROM OLD.unit
         OR NEW.allow_negative IS DISTINCT FROM OLD.allow_negative THEN
        RAISE EXCEPTION 'ledger account identity is fixed' USING ERRCODE = 'restrict_violation';
      END IF;
      RETURN NEW;
    END;
    $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER ledger_accounts_fixed BEFORE UPDATE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_account_update()""",
]


def ddl_for(dialect_name: str) -> list[str]:
    if dialect_name == "sqlite":
        return SQLITE_DDL
    if dialect_name == "postgresql":
        return POSTGRES_DDL
    raise NotImplementedError(f"no ledger triggers for {dialect_name}")


def install(connection: Connection) -> None:
    """Create the triggers on a connection whose tables already exist."""
    for statement in ddl_for(connection.dialect.name):
        connection.exec_driver_sql(statement)


def append_only_guard(dialect_name: str, table: str) -> list[str]:
    """DDL that makes any other table append-only in the same way (for audit logs, stock logs)."""
    if dialect_name == "sqlite":
        return [
            f"""CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
            BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END""",
            f"""CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
            BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END""",
        ]
    if dialect_name == "postgresql":
        return [
            f"""CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()""",
            f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()""",
        ]
    raise NotImplementedError(dialect_name)
