"""The payments plugin's tables, prefixed ``payments_``: a double-entry ledger.

Accounts hold a cached balance; transactions group entries; entries are
append-only and each transaction's entries sum to zero. A correction is a
new, reversing transaction, never an edit.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, UniqueConstraint, text

metadata = MetaData()

accounts = Table(
    "payments_accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    # None for the deployment's own (system) accounts.
    Column("user_id", Integer, ForeignKey("kernel_users.id", ondelete="RESTRICT"), nullable=True),
    # wallet, savings, or for system accounts what they stand for (external, interest).
    Column("kind", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    # The sum of the account's entries, kept in the same transaction as each entry.
    Column("balance", BigInteger, nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("user_id", "kind", "currency", name="uq_payments_accounts_owner"),
    # NULLs never collide in a unique constraint: system accounts need their own.
    Index(
        "uq_payments_accounts_system",
        "kind",
        "currency",
        unique=True,
        sqlite_where=text("user_id IS NULL"),
        postgresql_where=text("user_id IS NULL"),
    ),
)

transactions = Table(
    "payments_transactions",
    metadata,
    Column("id", Integer, primary_key=True),
    # transfer, topup, interest, reversal
    Column("kind", String(16), nullable=False),
    Column("created_at", DateTime, nullable=False),
    # Who asked for it (None for the system's own work).
    Column("actor_id", Integer, ForeignKey("kernel_users.id", ondelete="RESTRICT"), nullable=True),
    Column("note", String(280), nullable=False),
    # The client's idempotency key and a hash of what it asked, to tell a retry from a reuse.
    Column("idempotency_key", String(64), nullable=True),
    Column("request_hash", String(64), nullable=True),
    Column("reverses_id", Integer, ForeignKey("payments_transactions.id"), nullable=True),
    UniqueConstraint("actor_id", "idempotency_key", name="uq_payments_transactions_idempotency"),
)

entries = Table(
    "payments_entries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("transaction_id", Integer, ForeignKey("payments_transactions.id"), nullable=False),
    Column("account_id", Integer, ForeignKey("payments_accounts.id"), nullable=False),
    # Positive credits the account, negative debits it.
    Column("amount", BigInteger, nullable=False),
    Index("ix_payments_entries_account", "account_id", "id"),
    Index("ix_payments_entries_transaction", "transaction_id"),
)
