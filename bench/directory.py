"""Directory at scale: user look-up and prefix search over a bulk-loaded user table.

Run:

    python bench/directory.py [--users 1000000] [--queries 2000] [--duration 10]
    python bench/directory.py --database-url postgresql+psycopg://postgres@127.0.0.1/postgres

1. Builds a fresh deployment (``kernel.app.Kernel``, every bundled plugin) on
   an embedded SQLite database in a temporary data folder, or, with
   ``--database-url``, on a throwaway database created on that PostgreSQL
   server and dropped at the end; runs the migrations.
2. Bulk-loads N users straight into ``kernel_users`` with SQLAlchemy Core
   ``executemany`` in batches: varied usernames of 4 to 15 characters of
   ``[A-Za-z0-9_]``, unique without regard to case, display names, and one
   shared, precomputed argon2 password hash. Prints the load time.
3. In process, measures latency (p50, p99, mean, max) of
   ``identity.user_by_username`` for random existing names, of
   ``address_book.search(q, 20, None)`` for random 1-4 character prefixes
   of existing names, and of the same search for 1-character prefixes
   alone. The target is p99 <= 2 ms.
4. Serves the deployment with uvicorn in a subprocess (uvloop, httptools,
   request logs on, to a file) and measures requests/s over HTTP for
   ``GET /api/users/{name}`` and ``GET /api/directory?q=<prefix>`` with wrk
   (or the Python fallback generator), bounded in time.

Everything it starts is stopped, and everything it creates is removed.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import secrets
import statistics
import string
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import harness
import sqlalchemy
from harness import LoadOptions, LoadResult, Server
from sqlalchemy import insert

from kernel.app import Kernel
from kernel.pagination import Page
from kernel.passwords import hash_password
from kernel.settings import Settings
from kernel.storage.models import users

TARGET_P99_MS = 2.0
BATCH = 20_000
SEARCH_LIMIT = 20
HTTP_SAMPLE = 2_000

# Name material --------------------------------------------------------------------

FIRST = """
james mary john patricia robert jennifer michael linda william elizabeth david barbara richard susan joseph jessica
thomas sarah charles karen chris nancy daniel lisa matthew betty anthony margaret mark sandra donald ashley steven
kimberly paul emily andrew donna joshua michelle kenneth carol kevin amanda brian melissa george deborah timothy
stephanie ronald rebecca edward sharon jason laura jeffrey cynthia ryan kathleen jacob amy gary angela nicholas
anna eric brenda jonathan emma stephen pamela larry nicole justin helen scott samantha brandon katherine benjamin
christine samuel debra gregory rachel alex carolyn frank janet patrick maria raymond olivia jack heather dennis
diane jerry julie tyler joyce aaron victoria jose kelly adam ruth henry lauren nathan christina douglas joan zachary
evelyn peter judith kyle megan noah andrea ethan cheryl jeremy hannah walter jacqueline christian martha keith gloria
roger teresa terry sara austin janice sean marie gerald julia carl grace harold judy dylan theresa arthur madison
lawrence beverly jordan denise jesse marilyn bryan amber billy danielle bruce rose gabriel brittany joe diana logan
abigail albert natalie willie jane alan lori juan alexis wayne tiffany elijah kayla randy hiroshi yuki wei li ming
fatima aisha omar ali mohammed ahmed sofia lucas mateo valentina santiago camila leon mia felix lena jonas hanna
ines pierre camille louis chloe hugo lea ivan olga dmitri anya sven ingrid lars freya raj priya arjun ananya kofi
ama chidi ngozi tariq layla yusuf zara
""".split()

LAST = """
smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez gonzalez wilson anderson
thomas taylor moore jackson martin lee perez thompson white harris sanchez clark ramirez lewis robinson walker young
allen king wright scott torres nguyen hill flores green adams nelson baker hall rivera campbell mitchell carter
roberts gomez phillips evans turner diaz parker cruz edwards collins reyes stewart morris morales murphy cook rogers
gutierrez ortiz morgan cooper peterson bailey reed kelly howard ramos kim cox ward richardson watson brooks chavez
wood james bennett gray mendoza ruiz hughes price alvarez castillo sanders patel myers long ross foster jimenez
powell jenkins perry russell sullivan bell coleman butler henderson barnes gonzales fisher vasquez simmons romero
jordan patterson alexander hamilton graham reynolds griffin wallace west cole hayes bryant herrera gibson ellis
tanaka suzuki sato wang zhang chen liu singh kumar sharma muller schmidt schneider fischer weber meyer wagner
becker dubois durand lefebvre moreau rossi russo ferrari esposito bianchi ivanov petrov novak kowalski nowak
andersson johansson larsen hansen okafor mensah adeyemi haddad khalil nakamura kobayashi
""".split()

WORDS = """
pixel nova echo river stone shadow lunar solar frost ember storm cloud night star wolf fox hawk raven tiger bear
lion dragon ghost ninja coder maker gamer rider hunter dreamer coffee pizza taco mango lemon cherry berry honey
sugar cookie sunny happy lucky crazy cool chill real true just only official the its mr ms dr team crew club
studio labs daily life world music art photo travel food tech dev code data cyber neon retro vintage urban wild
blue red green black white gold silver pink purple dark light fire ice sky sea ocean forest mountain desert city
""".split()

ACCENTED = {"e": "é", "a": "á", "o": "ö", "u": "ü", "n": "ñ", "i": "í"}
EMOJI = ["\u2728", "\U0001f680", "\U0001f331", "\U0001f3b8", "\u2615", "\U0001f30d"]
HANDLE_CHARS = string.ascii_letters + string.digits + "_"


def styled(word: str, rng: random.Random) -> str:
    """A word as people write it in handles: lower, Capitalised or UPPER."""
    roll = rng.random()
    if roll < 0.55:
        return word
    if roll < 0.95:
        return word.capitalize()
    return word.upper()


def candidate_username(rng: random.Random) -> tuple[str, str, str]:
    """A plausible handle, plus the first and last name it was built from (may be empty)."""
    first, last, word = rng.choice(FIRST), rng.choice(LAST), rng.choice(WORDS)
    pattern = rng.random()
    digits = str(rng.randint(0, 9999)) if rng.random() < 0.5 else ""
    if pattern < 0.25:
        name = styled(first, rng) + styled(last, rng) + digits
    elif pattern < 0.40:
        name = styled(first, rng) + "_" + styled(last, rng)
    elif pattern < 0.55:
        name = styled(first, rng) + (digits or str(rng.randint(1, 99)))
    elif pattern < 0.65:
        name = first[0] + styled(last, rng) + digits
    elif pattern < 0.80:
        name = styled(word, rng) + rng.choice(["", "_", ""]) + styled(rng.choice(WORDS + [first]), rng) + digits
    elif pattern < 0.90:
        name = rng.choice(["the", "real", "its", "x", "mr", "ms", "_"]) + styled(first, rng) + rng.choice(["", "_", "x", digits])
    else:
        name = "".join(rng.choice(HANDLE_CHARS) for _ in range(rng.randint(4, 15)))
        first = last = ""
    name = name[:15]
    while len(name) < 4:
        name += rng.choice(string.digits)
    return name, first, last


def display_name_for(username: str, first: str, last: str, rng: random.Random) -> str:
    """What the user calls themselves: often a real name, sometimes nothing (the username), now and then decorated."""
    roll = rng.random()
    if not first or roll < 0.25:
        display = username  # never set one: the kernel uses the username
    elif roll < 0.65:
        display = f"{first.capitalize()} {last.capitalize()}"
    elif roll < 0.80:
        display = first.capitalize()
    elif roll < 0.90:
        display = f"{first.capitalize()} {last[0].upper()}."
    else:
        display = " ".join(part.capitalize() for part in (first, rng.choice(FIRST), last))
    if rng.random() < 0.05:
        display = "".join(ACCENTED.get(char, char) if rng.random() < 0.3 else char for char in display)
    if rng.random() < 0.03:
        display += " " + rng.choice(EMOJI)
    return display[:50]


@dataclass(frozen=True)
class Person:
    username: str
    display_name: str


def people(count: int, seed: int) -> Iterator[Person]:
    """``count`` people with usernames unique without regard to case."""
    rng = random.Random(seed)
    taken: set[str] = set()
    while len(taken) < count:
        username, first, last = candidate_username(rng)
        while username.lower() in taken:
            username = (username[: rng.randint(4, 11)] + str(rng.randint(0, 9999)))[:15]
        taken.add(username.lower())
        yield Person(username, display_name_for(username, first, last, rng))


# Deployment -------------------------------------------------------------------------


@contextlib.contextmanager
def throwaway_postgres(server_url: str) -> Iterator[str]:
    """A database created on the server of ``server_url`` for this run, dropped afterwards."""
    server = sqlalchemy.make_url(server_url)
    name = f"everything_bench_{secrets.token_hex(6)}"
    admin = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def make_settings(data_dir: Path, database_url: str | None) -> Settings:
    return Settings.model_validate({"data_dir": data_dir, "database": {"url": database_url, "auto_migrate": True}})


def bulk_load(kernel: Kernel, count: int, seed: int) -> tuple[list[str], float]:
    """Insert ``count`` users in batches; returns their usernames and the seconds it took."""
    password_hash = hash_password("the same password for everyone")
    rng = random.Random(seed + 1)
    epoch = datetime(2019, 1, 1)
    usernames: list[str] = []
    batch: list[dict[str, Any]] = []
    statement = insert(users)
    started = time.perf_counter()

    def flush() -> None:
        kernel.db.write(lambda conn: conn.execute(statement, batch))
        batch.clear()

    for person in people(count, seed):
        usernames.append(person.username)
        batch.append(
            {
                "username": person.username,
                "username_lower": person.username.lower(),
                "display_name": person.display_name,
                "display_lower": person.display_name.lower(),
                "bio": "" if rng.random() < 0.6 else "Hello from the benchmark.",
                "password_hash": password_hash,
                "created_at": epoch + timedelta(seconds=rng.randint(0, 6 * 365 * 86400)),
                "followers_count": int(rng.paretovariate(1.2)) - 1,
                "following_count": rng.randint(0, 500),
                "is_admin": False,
            }
        )
        if len(batch) >= BATCH:
            flush()
            if len(usernames) % 200_000 == 0:
                print(f"  {len(usernames):>9,} users in {time.perf_counter() - started:5.1f} s", flush=True)
    if batch:
        flush()
    return usernames, time.perf_counter() - started


# In-process latency ---------------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    label: str
    samples_ms: list[float]

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples_ms)


def time_calls(label: str, call: Callable[[str], Any], arguments: list[str], warmup: int = 200) -> Latency:
    """Call ``call`` once per argument, after a warm-up, timing each call."""
    for argument in arguments[:warmup]:
        call(argument)
    samples: list[float] = []
    for argument in arguments:
        started = time.perf_counter_ns()
        call(argument)
        samples.append((time.perf_counter_ns() - started) / 1e6)
    return Latency(label, samples)


def prefixes(usernames: list[str], count: int, rng: random.Random, lengths: tuple[int, ...]) -> list[str]:
    return [name[: rng.choice(lengths)] for name in rng.choices(usernames, k=count)]


def check_loaded(kernel: Kernel, usernames: list[str], rng: random.Random) -> None:
    """Loaded users are found by name, and prefixes of their names find someone."""
    missing = [name for name in rng.choices(usernames, k=50) if kernel.identity.user_by_username(name) is None]
    if missing:
        raise RuntimeError(f"loaded users not found: {missing[:5]}")
    search = kernel.address_book.search
    empty = [q for q in prefixes(usernames, 50, rng, (1, 2, 3, 4)) if not search(q, SEARCH_LIMIT, None).results]
    if empty:
        raise RuntimeError(f"prefixes of loaded users found nobody: {empty[:5]}")


def measure_in_process(kernel: Kernel, usernames: list[str], queries: int, seed: int) -> list[Latency]:
    rng = random.Random(seed + 2)
    check_loaded(kernel, usernames, rng)
    names = rng.choices(usernames, k=queries)

    def search(q: str) -> Page:
        return kernel.address_book.search(q, SEARCH_LIMIT, None)

    return [
        time_calls("user_by_username(name)", kernel.identity.user_by_username, names),
        time_calls("search(q, 20), q of 1-4 chars", search, prefixes(usernames, queries, rng, (1, 2, 3, 4))),
        time_calls("search(q, 20), q of 1 char", search, prefixes(usernames, queries, rng, (1,))),
    ]


# Over HTTP ---------------------------------------------------------------------------------


def measure_http(
    settings: Settings, usernames: list[str], options: LoadOptions, workdir: Path, use_wrk: bool, seed: int
) -> list[tuple[str, LoadResult]]:
    rng = random.Random(seed + 3)
    user_paths = [f"/api/users/{name}" for name in rng.choices(usernames, k=HTTP_SAMPLE)]
    search_paths = [f"/api/directory?q={q}" for q in prefixes(usernames, HTTP_SAMPLE, rng, (1, 2, 3, 4))]
    arguments = ["--data-dir", str(settings.data_dir)]
    if settings.database.url:
        arguments += ["--database-url", settings.database.url]
    results: list[tuple[str, LoadResult]] = []
    with Server("kernel", workdir / "kernel-server.log", "/readyz", arguments) as server:
        for label, paths in (("GET /api/users/{name}", user_paths), ("GET /api/directory?q=<1-4 chars>", search_paths)):
            result = harness.load_test(server.url, paths, [], options, workdir, use_wrk)
            print(f"  {label:<34} {harness.describe(result)}", flush=True)
            results.append((label, result))
    return results


# Report ----------------------------------------------------------------------------------------


def print_report(
    backend: str, count: int, load_seconds: float, latencies: list[Latency], http: list[tuple[str, LoadResult]], generator: str
) -> None:
    print()
    print(f"Directory benchmark: {count:,} users on {backend}")
    print(f"  bulk load: {load_seconds:.1f} s ({count / load_seconds:,.0f} rows/s, generating the names included)")
    print()
    calls = f"in process ({len(latencies[0].samples_ms)} calls each)"
    print(f"  {calls:<36} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'max ms':>8}  p99 <= {TARGET_P99_MS} ms")
    for latency in latencies:
        verdict = "met" if latency.percentile(0.99) <= TARGET_P99_MS else "NOT met"
        print(
            f"  {latency.label:<36} {latency.percentile(0.50):8.3f} {latency.percentile(0.99):8.3f} "
            f"{latency.mean:8.3f} {max(latency.samples_ms):8.3f}  {verdict}"
        )
    print()
    print(f"  over HTTP, load from {generator}")
    print(f"  {'':<36} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for label, result in http:
        problems = f"  !! {result.non_2xx} non-2xx, {result.errors} socket errors" if result.non_2xx or result.errors else ""
        print(f"  {label:<36} {result.rate:8,.0f} {result.p50_ms:8.2f} {result.p99_ms:8.2f}{problems}")


def run(args: argparse.Namespace, options: LoadOptions, use_wrk: bool) -> None:
    """Load, measure and report; the temporary folder and any throwaway database are removed after."""
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="everything-bench-")))
        database_url = stack.enter_context(throwaway_postgres(args.database_url)) if args.database_url else None
        backend = sqlalchemy.make_url(database_url).get_backend_name() if database_url else "embedded SQLite"
        settings = make_settings(workdir / "data", database_url)
        kernel = Kernel(settings)
        stack.callback(kernel.db.dispose)
        kernel.upgrade_database()
        print(f"loading {args.users:,} users into {backend} ...", flush=True)
        usernames, load_seconds = bulk_load(kernel, args.users, args.seed)
        print("measuring in process ...", flush=True)
        latencies = measure_in_process(kernel, usernames, args.queries, args.seed)
        kernel.db.dispose()  # the server opens its own connections
        print(
            "measuring over HTTP: uvicorn (uvloop, httptools, 1 worker, request logs on, to a file), "
            f"load from {harness.describe_load(options, use_wrk)}",
            flush=True,
        )
        http = measure_http(settings, usernames, options, workdir, use_wrk, args.seed)
        print_report(backend, args.users, load_seconds, latencies, http, harness.generator_name(use_wrk))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1_000_000, help="users to load (default %(default)s)")
    parser.add_argument("--queries", type=int, default=2_000, help="in-process calls per measurement (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="random seed for names and queries (default %(default)s)")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server URL, e.g. postgresql+psycopg://postgres@127.0.0.1/postgres; "
        "a throwaway database is created on it and dropped afterwards (default: embedded SQLite)",
    )
    harness.add_load_options(parser)
    args = parser.parse_args()
    harness.exit_cleanly_on_sigterm()
    run(args, harness.load_options(args), use_wrk=not args.no_wrk)


if __name__ == "__main__":
    main()
