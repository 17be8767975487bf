"""The entitlement check: what one ``kernel.entitlements.check(user, key)`` costs, warm and cold.

Run:

    python bench/entitlements.py [--repeat 7] [--cold 300]

In this process: builds a :class:`kernel.app.Kernel` (every bundled plugin)
on an embedded SQLite database in a temporary folder, runs
``upgrade_database()``, creates a few users through the identity service and
grants ``premium`` to one of them (an operator grant), then times, with
``timeit`` (``--repeat`` runs, each sized to take about 0.2 s):

- ``check(premium_user, "kernel.verified")``: allowed;
- ``check(free_user, "kernel.verified")``: refused, the Decision naming the
  plan, upgrade URL and upsell message;
- ``kernel.is_verified(user)`` for both, as templates and the user JSON call it;

with the user's plans cached (warm), and prints the best and the median run
per call in µs; the target is at most 5 µs warm. The cache trusts a user's
plans for ``entitlements.refresh_seconds`` (2 s by default, fewer when a grant
starts or ends sooner), so a run that spans that reloads once: included, as in
production. Then the cold cost: ``entitlements.forget(user.id)`` followed by
one check, which reads the user's grants from the database (``--cold`` times
each, best and median).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from kernel.app import Kernel  # noqa: E402
from kernel.identity import User  # noqa: E402
from kernel.settings import Settings  # noqa: E402

TARGET_US = 5.0
FEATURE = "kernel.verified"
RUN_SECONDS = 0.2


def build_kernel(data_dir: Path) -> Kernel:
    settings = Settings.model_validate({"data_dir": data_dir, "database": {"url": None, "auto_migrate": True}})
    kernel = Kernel(settings)
    kernel.upgrade_database()
    return kernel


def make_users(kernel: Kernel) -> tuple[User, User]:
    """A few accounts; the first holds premium, the others only free. Returns (premium, free)."""
    users = [
        kernel.identity.create_user(name, "not a real hash", name.title()) for name in ("pam_premium", "fred_free", "other_one")
    ]
    kernel.entitlements.grant(users[0], "premium", source="operator", reference="bench")
    return users[0], users[1]


def time_per_call(statement: str, namespace: dict[str, object], repeat: int) -> tuple[float, float, int]:
    """Best and median µs per call over ``repeat`` runs of ``statement``, each about RUN_SECONDS long."""
    timer = timeit.Timer(statement, globals=namespace)
    number, seconds = timer.autorange()
    number = max(1, int(number * RUN_SECONDS / max(seconds, 1e-9)))
    runs = [total / number * 1e6 for total in timer.repeat(repeat=repeat, number=number)]
    return min(runs), statistics.median(runs), number


def time_cold(check: Callable[[], object], forget: Callable[[], None], count: int) -> tuple[float, float]:
    """Best and median µs of one check right after the user's cached plans were dropped."""
    samples = []
    for _ in range(count):
        forget()
        started = time.perf_counter_ns()
        check()
        samples.append((time.perf_counter_ns() - started) / 1000)
    return min(samples), statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per case (default %(default)s)")
    parser.add_argument("--cold", type=int, default=300, help="cold checks timed per user (default %(default)s)")
    args = parser.parse_args()

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    print(f"machine: {os.cpu_count()} cores ({usable} usable){load}; Python {platform.python_version()}, one thread, in-process")
    with tempfile.TemporaryDirectory(prefix="everything-bench-") as tmp:
        kernel = build_kernel(Path(tmp) / "data")
        try:
            premium, free = make_users(kernel)
            entitlements = kernel.entitlements
            allowed, refused = entitlements.check(premium, FEATURE), entitlements.check(free, FEATURE)
            if not allowed or refused or refused.reason != "premium_required":
                raise RuntimeError(f"unexpected decisions: {allowed!r}, {refused!r}")
            print(
                f"kernel: Kernel(Settings) on embedded SQLite, bundled plugins; features declared: {', '.join(entitlements.catalog.features)}; "
                f"cache trusted for entitlements.refresh_seconds = {kernel.settings.entitlements.refresh_seconds:g} s"
            )
            print(f"refused decision: reason={refused.reason}, plan={refused.plan}, upgrade_url={refused.upgrade_url}")
            print()

            namespace: dict[str, object] = {
                "check": entitlements.check,
                "is_verified": kernel.is_verified,
                "premium": premium,
                "free": free,
                "key": FEATURE,
            }
            cases = [
                ("check(premium, 'kernel.verified')  allowed", "check(premium, key)"),
                ("check(free, 'kernel.verified')     refused", "check(free, key)"),
                ("kernel.is_verified(premium)        True   ", "is_verified(premium)"),
                ("kernel.is_verified(free)           False  ", "is_verified(free)"),
            ]
            print(f"warm (plans cached): timeit, {args.repeat} runs of ~{RUN_SECONDS:g} s each, µs per call")
            worst = 0.0
            for label, statement in cases:
                best, median, number = time_per_call(statement, namespace, args.repeat)
                worst = max(worst, median)
                print(f"  {label}   best {best:6.3f} µs   median {median:6.3f} µs   ({number:,} calls a run)")
            verdict = "met" if worst <= TARGET_US else "NOT met"
            print(f"  target <= {TARGET_US:g} µs per warm check: {verdict} (worst median {worst:.3f} µs)")
            print()

            print(f"cold (entitlements.forget(user.id), then one check: one SQLite read of the user's grants), {args.cold} each")
            for label, user in (("premium user", premium), ("free user   ", free)):
                best, median = time_cold(
                    lambda user=user: entitlements.check(user, FEATURE), lambda user=user: entitlements.forget(user.id), args.cold
                )
                print(f"  {label}   best {best:8.1f} µs   median {median:8.1f} µs")
        finally:
            kernel.db.dispose()


if __name__ == "__main__":
    main()
