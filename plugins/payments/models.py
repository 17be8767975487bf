"""The payments plugin's tables, prefixed ``payments_``: a double-entry ledger.

Accounts hold a cached balance; transactions group entries; entries are
append-only and each transaction's entries sum to zero. A correction is a
new, reversing transaction, never an edit.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)

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
    # transfer, topup, interest, reversal, request (a paid payment request), savings_deposit, savings_withdraw
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

# Billing: what the provider (Stripe, or the embedded sandbox) told us ---------------------

customers = Table(
    "payments_customers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("kernel_users.id", ondelete="RESTRICT"), nullable=False),
    Column("provider", String(16), nullable=False),
    # The provider's id of the user as a paying customer (cus_… at Stripe).
    Column("customer_id", String(255), nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("provider", "customer_id", name="uq_payments_customers_ref"),
    UniqueConstraint("user_id", "provider", name="uq_payments_customers_user"),
)

subscriptions = Table(
    "payments_subscriptions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("kernel_users.id", ondelete="RESTRICT"), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("subscription_id", String(255), nullable=False),
    # None when the provider's price matches no plan of the deployment.
    Column("plan", String(64), nullable=True),
    # The provider's words: incomplete, trialing, active, past_due, unpaid, canceled…
    Column("status", String(32), nullable=False),
    Column("current_period_end", DateTime, nullable=True),
    Column("cancel_at_period_end", Boolean, nullable=False),
    # Set by a failed renewal payment: the plan is kept until then, cleared when paid.
    Column("grace_until", DateTime, nullable=True),
    # When the provider's state in this row was read: an older reading never overwrites a newer one.
    Column("observed_at", DateTime, nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("provider", "subscription_id", name="uq_payments_subscriptions_ref"),
    Index("ix_payments_subscriptions_user", "user_id"),
)

billing_events = Table(
    "payments_billing_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("provider", String(16), nullable=False),
    # Recorded in the same transaction as the event's effect: a replay finds it and changes nothing.
    Column("event_id", String(255), nullable=False),
    Column("type", String(64), nullable=False),
    Column("received_at", DateTime, nullable=False),
    UniqueConstraint("provider", "event_id", name="uq_payments_billing_events_ref"),
)

checkouts = Table(
    "payments_checkouts",
    metadata,
    # A random token: it is the checkout page's address.
    Column("id", String(32), primary_key=True),
    Column("user_id", Integer, ForeignKey("kernel_users.id", ondelete="RESTRICT"), nullable=False),
    Column("provider", String(16), nullable=False),
    # subscription (then plan is set) or topup (then amount goes to the wallet).
    Column("purpose", String(16), nullable=False),
    Column("plan", String(64), nullable=True),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    # open, completed, expired
    Column("status", String(16), nullable=False),
    # The provider's session id (cs_… at Stripe).
    Column("provider_ref", String(255), nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("completed_at", DateTime, nullable=True),
    Column("transaction_id", Integer, ForeignKey("payments_transactions.id"), nullable=True),
    Index("ix_payments_checkouts_user", "user_id", "created_at"),
)

# Payment requests and savings interest ------------------------------------------------------

payment_requests = Table(
    "payments_requests",
    metadata,
    Column("id", Integer, primary_key=True),
    # Who asks for the money, and who is asked to pay it.
    Column("requester_id", Integer, ForeignKey("kernel_users.id", ondelete="RESTRICT"), nullable=False),
    Column("payer_id", Integer, ForeignKey("kernel_users.id", ondelete="RESTRICT"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("note", String(280), nullable=False),
    # pending, then exactly one of paid, declined, cancelled (a conditional UPDATE decides).
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("decided_at", DateTime, nullable=True),
    # The payment, once paid: written in the same transaction as the status.
    Column("transaction_id", Integer, ForeignKey("payments_transactions.id"), nullable=True),
    Index("ix_payments_requests_payer", "payer_id", "id"),
    Index("ix_payments_requests_requester", "requester_id", "id"),
)

interest_accruals = Table(
    "payments_interest_accruals",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, ForeignKey("payments_accounts.id"), nullable=False),
    # The (UTC) day whose closing balance earned the interest.
    Column("day", Date, nullable=False),
    # The closing balance, the annual rate (as written in the settings) and what they earned.
    Column("balance", BigInteger, nullable=False),
    Column("annual_rate", String(24), nullable=False),
    Column("amount", BigInteger, nullable=False),
    # Billionths of a minor unit left over after flooring, carried into the next day's interest.
    Column("remainder_nanos", BigInteger, nullable=False),
    # None when the day earned less than one minor unit (nothing posted, the remainder grew).
    Column("transaction_id", Integer, ForeignKey("payments_transactions.id"), nullable=True),
    Column("created_at", DateTime, nullable=False),
    # At most one accrual per account and day, however often and wherever the job runs.
    UniqueConstraint("account_id", "day", name="uq_payments_interest_accruals_day"),
)
