"""The ledger: transfers per second with 8 concurrent clients, then the audit.

Run:

    python bench/ledger.py [--clients 8] [--seconds 5] [--database-url postgresql://...]

In this process: builds a :class:`kernel.app.Kernel` (every bundled plugin)
on an embedded SQLite database in a temporary folder (or the PostgreSQL
database given, which must be empty), makes 100 users with 1,000,000 cents
each, then runs ``--clients`` threads that each send transfers of 1 to 500
cents between random users through ``Ledger.transfer`` (each one database
transaction: an idempotency key, two guarded balance updates, a transaction
row and two entries) for ``--seconds``. Prints transfers per second, refused
transfers, and the audit's verdict and duration afterwards. The target is at
least 1,000 transfers/s in-process on SQLite. Over HTTP is next (the API's
costs are the kernel's, measured in bench/kernel_overhead.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from kernel.app import Kernel  # noqa: E402
from kernel.errors import ApiError  # noqa: E402
from kernel.settings import Settings  # noqa: E402

TARGET_PER_SECOND = 1_000
USERS = 100
FUNDS = 1_000_000


def build_kernel(data_dir: Path, database_url: str | None) -> Kernel:
    settings = Settings.model_validate({"data_dir": data_dir, "database": {"url": database_url, "auto_migrate": True}})
    kernel = Kernel(settings)
    kernel.upgrade_database()
    return kernel


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--database-url", default=None, help="an empty PostgreSQL database (default: embedded SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        kernel = build_kernel(Path(folder), args.database_url)
        ledger = kernel.plugin_state["payments"].ledger
        people = [kernel.identity.create_user(f"payer{number:03d}", "not a real hash", f"Payer {number}").id for number in range(USERS)]
        for person in people:
            ledger.credit(person, FUNDS, "topup")
        done, refused = [0] * args.clients, [0] * args.clients
        stop = time.monotonic() + args.seconds

        def client(slot: int) -> None:
            chooser = random.Random(slot)
            number = 0
            while time.monotonic() < stop:
                payer, payee = chooser.sample(people, 2)
                number += 1
                try:
                    ledger.transfer(payer, payee, chooser.randint(1, 500), "", f"c{slot}-{number}")
                    done[slot] += 1
                except ApiError:
                    refused[slot] += 1

        threads = [threading.Thread(target=client, args=(slot,)) for slot in range(args.clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        audit_started = time.monotonic()
        breaches = ledger.audit()
        audit_seconds = time.monotonic() - audit_started
        backend = "PostgreSQL" if args.database_url else "SQLite (embedded)"
        rate = sum(done) / elapsed
        print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}; database: {backend}")
        print(f"{args.clients} clients for {elapsed:.1f} s: {sum(done):,} transfers, {sum(refused):,} refused")
        print(f"transfers per second: {rate:,.0f}   target >= {TARGET_PER_SECOND:,} in-process on SQLite: {'met' if rate >= TARGET_PER_SECOND else 'NOT met'}")
        print(f"audit: {'sound' if not breaches else f'{len(breaches)} breaches'} in {audit_seconds * 1000:.0f} ms")
        kernel.db.dispose()
        return 0 if not breaches else 1


if __name__ == "__main__":
    sys.exit(main())
