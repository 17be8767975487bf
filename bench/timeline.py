"""Home timeline at scale: the feed's fan-out-on-read home query over a bulk-loaded world.

Run:

    python bench/timeline.py [--users 100000] [--posts 1000000] [--follows 1000]
    python bench/timeline.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

1. Builds a fresh deployment (``kernel.app.Kernel``, every bundled plugin, the
   feed among them) on an embedded SQLite database in a temporary data
   folder, or, with ``--database-url``, on a throwaway database created on
   that PostgreSQL server and dropped at the end; runs the migrations.
2. Bulk-loads, with SQLAlchemy Core ``executemany`` (SQLite) or ``COPY``
   (PostgreSQL), a world made up front from a seeded random generator:

   - users (``kernel_users``), names as in ``bench/directory.py``. Posting
     activity is skewed: 40 % never post; the others' weights are Pareto
     (alpha 1.5), so a few hundred accounts write a large share of the posts.
   - posts (``feed_posts``), authors drawn by that weight, ``created_at``
     rising with the id over the last year. 70 % are posts, 15 % replies (to a
     recent post, in its thread), 10 % reposts and 5 % quote posts (of a post
     from the last ~20,000); 1 % are deleted. Texts are 1-40 words; 12 % carry
     one or two @mentions of existing accounts (active ones more often), 15 %
     a #hashtag, 5 % a URL; ``feed_mentions`` and ``feed_hashtags`` hold them.
     ``replies_count``, ``reposts_count`` and ``likes_count`` match the rows.
   - likes (``feed_likes``, ``--likes``): by random users, half of them on
     recent posts; the reader also likes 3 % of the posts of those it follows.
   - one reader who follows ``--follows`` accounts (``kernel_follows``): a
     share (``--follow-active``) drawn by posting activity, as people follow
     accounts that post, the rest uniformly (friends, many of whom never
     post); it blocks ``--blocks`` accounts it does not follow
     (``kernel_blocks``). ``followers_count`` and ``following_count`` agree
     with the follow rows (nobody else follows anyone).

   Then ``ANALYZE`` on PostgreSQL (``VACUUM ANALYZE``, as autovacuum would
   soon do); on SQLite only with ``--analyze``, since the kernel never runs
   it. Prints how long each part took.
3. In process, after a warm-up, times ``--runs`` calls of the Feed service's
   ``home(reader, None, 50)`` (page 1) and ``home(reader, cursor, 50)``
   (page 2), then its parts: the timeline SELECT the service runs (recorded
   from a call, replayed alone), ``following_ids``, and ``to_json`` over the
   50 rows (the JSON building, with its own small queries). Prints p50, p95,
   p99, mean and max in ms, the statements one call runs, and the plan of the
   timeline query (``EXPLAIN QUERY PLAN`` / ``EXPLAIN (ANALYZE, BUFFERS)``).
   The target is p95 <= 20 ms on SQLite; nothing is asserted.
4. Serves the same database with ``bench/serve.py kernel`` (uvicorn, uvloop,
   httptools, one worker, request logs on, to a file) and measures requests
   per second and latency of ``GET /api/feed/home?limit=50`` with the
   reader's bearer token, with wrk (or the Python fallback generator): by
   default 1 thread, 8 connections, 10 s after a 2 s warm-up.

Everything it starts is stopped, and everything it creates is removed, on
error too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import tempfile
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import harness
import httpx
import sqlalchemy
from directory import WORDS, Latency, make_settings, people, throwaway_postgres
from harness import LoadOptions, LoadResult, Server
from sqlalchemy import Connection, Table, event, insert

from kernel.app import Kernel
from kernel.passwords import hash_password
from kernel.settings import normalise_database_url
from kernel.storage.models import blocks, follows, users
from plugins.feed.models import hashtags, likes, mentions, posts
from plugins.feed.posts import FEED

TARGET_P95_MS = 20.0
PAGE = 50
BATCH = 50_000

ORIGINAL, REPLY, REPOST, QUOTE = 0, 1, 2, 3

VOCABULARY = (
    """
the a to and of in is it you that for on this with was are be at have not just so but my all what we can like
get one out about up now more your time day new good today people know think really see love back make want
still going much right need first last great thanks night morning week year work home game show news team city
music movie book coffee weather weekend friend family school phone app update launch release build ship fix bug
idea plan look feel made said says best better never always again here there when why how who which finally
""".split()
    + WORDS
)
TAGS = """
ai python news music football nba f1 gaming art photography travel food coffee startup tech science space climate
election crypto bitcoin stocks movies tv books design ux webdev opensource linux rust javascript health fitness
running cycling weekend mondaymotivation tbt photooftheday nature cats dogs fashion style history jobs remote
""".split()
EMOJI = ["\U0001f600", "\U0001f525", "\u2764\ufe0f", "\U0001f44d", "\U0001f389", "\U0001f602", "\U0001f440", "\u2728"]


# The world -------------------------------------------------------------------------------------


@dataclass
class World:
    """Everything the load writes, decided before writing (counts need the whole picture)."""

    users: int
    post_count: int
    start: datetime
    usernames: list[str] = field(default_factory=list)
    display_names: list[str] = field(default_factory=list)
    cum_weights: list[float] = field(default_factory=list)  # posting activity, cumulative, for users 1..N
    reader: int = 1
    followees: list[int] = field(default_factory=list)
    blocked: list[int] = field(default_factory=list)
    # Per post (index = id; index 0 unused).
    authors: array = field(default_factory=lambda: array("i"))
    kinds: bytearray = field(default_factory=bytearray)
    targets: array = field(default_factory=lambda: array("i"))
    roots: array = field(default_factory=lambda: array("i"))
    seconds: array = field(default_factory=lambda: array("q"))  # created_at - start
    deleted: bytearray = field(default_factory=bytearray)
    replies: array = field(default_factory=lambda: array("i"))
    reposts: array = field(default_factory=lambda: array("i"))
    like_counts: array = field(default_factory=lambda: array("i"))
    like_rows: list[tuple[int, int]] = field(default_factory=list)  # (post_id, user_id)
    followee_posts: int = 0

    def created_at(self, post_id: int) -> datetime:
        return self.start + timedelta(seconds=self.seconds[post_id])


def make_world(
    user_count: int, post_count: int, follow_count: int, block_count: int, like_count: int, follow_active: float, seed: int
) -> World:
    rng = random.Random(seed)
    year = 365 * 86400
    world = World(user_count, post_count, datetime.now().replace(microsecond=0) - timedelta(seconds=year))
    for person in people(user_count, seed):
        world.usernames.append(person.username)
        world.display_names.append(person.display_name)
    weights = [0.0 if rng.random() < 0.4 else rng.paretovariate(1.5) for _ in range(user_count)]
    weights[world.reader - 1] = 1.0  # the reader posts now and then: their own posts are in their home timeline
    total = 0.0
    for weight in weights:
        total += weight
        world.cum_weights.append(total)
    ids = range(1, user_count + 1)

    def active_user() -> int:
        return rng.choices(ids, cum_weights=world.cum_weights)[0]

    chosen: set[int] = set()
    while len(chosen) < min(follow_count, user_count - 1):
        candidate = active_user() if len(chosen) < follow_count * follow_active else rng.randint(1, user_count)
        if candidate != world.reader:
            chosen.add(candidate)
    world.followees = sorted(chosen)
    blocked: set[int] = set()
    while len(blocked) < min(block_count, user_count - 1 - len(chosen)):
        candidate = rng.randint(1, user_count)
        if candidate != world.reader and candidate not in chosen:
            blocked.add(candidate)
    world.blocked = sorted(blocked)

    # Posts, in id order: authors by activity, kinds, targets, times.
    size = post_count + 1
    world.authors = array("i", [0]) + array("i", rng.choices(ids, cum_weights=world.cum_weights, k=post_count))
    world.kinds = bytearray(size)
    world.targets = array("i", bytes(4 * size))
    world.roots = array("i", bytes(4 * size))
    world.seconds = array("q", bytes(8 * size))
    world.deleted = bytearray(size)
    world.replies = array("i", bytes(4 * size))
    world.reposts = array("i", bytes(4 * size))
    world.like_counts = array("i", bytes(4 * size))
    mean_gap = year / post_count
    elapsed = 0.0
    reposted: set[tuple[int, int]] = set()
    kinds, targets, roots, deleted = world.kinds, world.targets, world.roots, world.deleted

    def earlier(post_id: int, mean_back: float) -> int:
        target = post_id - 1 - int(rng.expovariate(1 / mean_back))
        if target >= 1 and kinds[target] == REPOST:
            target = targets[target]  # one replies to, reposts or quotes the original, never a repost
        return target

    for post_id in range(1, size):
        elapsed += rng.expovariate(1 / mean_gap)
        world.seconds[post_id] = int(elapsed)
        roll = rng.random()
        kind, target = ORIGINAL, 0
        if roll >= 0.70:
            kind = REPLY if roll < 0.85 else REPOST if roll < 0.95 else QUOTE
            target = earlier(post_id, 2_000 if kind == REPLY else 20_000)
            if target < 1 or (kind == REPOST and (world.authors[post_id], target) in reposted):
                kind, target = ORIGINAL, 0
        kinds[post_id] = kind
        targets[post_id] = target
        gone = rng.random() < 0.01
        deleted[post_id] = gone
        if kind == REPLY:
            roots[post_id] = roots[target] or target
            if not gone:
                world.replies[target] += 1
        elif kind == REPOST:
            reposted.add((world.authors[post_id], target))
            if not gone:
                world.reposts[target] += 1
        else:
            roots[post_id] = post_id

    # Likes: random users, half on recent posts; the reader on 3 % of what it follows.
    likeable = [False, *(not deleted[i] and kinds[i] != REPOST for i in range(1, size))]
    pairs: set[tuple[int, int]] = set()
    attempts = 0
    while len(pairs) < like_count and attempts < like_count * 3:
        attempts += 1
        post_id = post_count - int(rng.expovariate(5 / post_count)) if rng.random() < 0.5 else rng.randint(1, post_count)
        if 1 <= post_id <= post_count and likeable[post_id]:
            pairs.add((post_id, rng.randint(1, user_count)))
    followed = set(world.followees)
    for post_id in range(1, size):
        if world.authors[post_id] in followed:
            world.followee_posts += 1
            if likeable[post_id] and rng.random() < 0.03:
                pairs.add((post_id, world.reader))
    world.like_rows = sorted(pairs)
    for post_id, _ in world.like_rows:
        world.like_counts[post_id] += 1
    return world


def post_text(rng: random.Random, world: World, author: int) -> tuple[str, list[str], list[int]]:
    """A post's text, its hashtags (lowercased, once each) and the other accounts it mentions."""
    words: list[str] = []
    length = 0
    for _ in range(max(1, min(40, int(rng.lognormvariate(2.3, 0.8))))):
        word = rng.choice(VOCABULARY)
        if length + len(word) + 1 > 200:
            break
        words.append(word)
        length += len(word) + 1
    words[0] = words[0].capitalize()
    mentioned: list[int] = []
    if rng.random() < 0.12:
        for _ in range(1 if rng.random() < 0.8 else 2):
            user_id = rng.choices(range(1, world.users + 1), cum_weights=world.cum_weights)[0]
            words.insert(rng.randint(0, len(words)), "@" + world.usernames[user_id - 1])
            if user_id != author and user_id not in mentioned:
                mentioned.append(user_id)
    tags: list[str] = []
    if rng.random() < 0.15:
        for _ in range(1 if rng.random() < 0.7 else 2):
            tag = rng.choice(TAGS)
            words.append("#" + (tag if rng.random() < 0.7 else tag.capitalize()))
            if tag not in tags:
                tags.append(tag)
    if rng.random() < 0.05:
        words.append(f"https://example.com/{rng.choice(WORDS)}/{rng.randint(1, 99999)}")
    if rng.random() < 0.05:
        words.append(rng.choice(EMOJI))
    return " ".join(words), tags, mentioned


# Loading -----------------------------------------------------------------------------------------


class Loader:
    """Rows into tables: Core ``executemany`` on SQLite, ``COPY`` on PostgreSQL; one transaction per batch."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.copy = not kernel.db.is_sqlite

    def load(self, table: Table, columns: list[str], rows: Iterable[tuple[Any, ...]]) -> int:
        count = 0
        batch: list[tuple[Any, ...]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH:
                count += self._flush(table, columns, batch)
        return count + self._flush(table, columns, batch)

    def _flush(self, table: Table, columns: list[str], batch: list[tuple[Any, ...]]) -> int:
        if not batch:
            return 0
        rows = list(batch)
        batch.clear()

        def work(conn: Connection) -> None:
            if self.copy:
                with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
                    with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
            else:
                # Room for the indexes as they grow (the engine is disposed after loading, and this with it).
                conn.exec_driver_sql("PRAGMA cache_size=-262144")
                conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])

        self.kernel.db.write(work)
        return len(rows)


def load_world(kernel: Kernel, world: World, seed: int) -> list[tuple[str, int, float]]:
    """Write the world; returns (what, rows, seconds) for each table."""
    loader = Loader(kernel)
    rng = random.Random(seed + 1)
    timings: list[tuple[str, int, float]] = []
    followed = set(world.followees)

    def timed(what: str, table: Table, columns: list[str], rows: Iterable[tuple[Any, ...]]) -> None:
        started = time.perf_counter()
        count = loader.load(table, columns, rows)
        timings.append((what, count, time.perf_counter() - started))
        print(f"  {what:<16} {count:>10,} rows in {timings[-1][2]:6.1f} s", flush=True)

    password_hash = hash_password("the same password for everyone")
    joined = world.start - timedelta(days=5 * 365)

    def user_rows() -> Iterator[tuple[Any, ...]]:
        for user_id in range(1, world.users + 1):
            username, display = world.usernames[user_id - 1], world.display_names[user_id - 1]
            yield (
                user_id, username, username.lower(), display, display.lower(), "" if rng.random() < 0.6 else "Hello from the benchmark.",
                password_hash, joined + timedelta(seconds=rng.randint(0, 5 * 365 * 86400)),
                1 if user_id in followed else 0, len(world.followees) if user_id == world.reader else 0, False,
            )  # fmt: skip

    user_columns = [
        "id", "username", "username_lower", "display_name", "display_lower", "bio",
        "password_hash", "created_at", "followers_count", "following_count", "is_admin",
    ]  # fmt: skip
    timed("kernel_users", users, user_columns, user_rows())
    when = world.start - timedelta(days=1)
    timed(
        "kernel_follows",
        follows,
        ["follower_id", "followee_id", "created_at"],
        ((world.reader, f, when) for f in world.followees),
    )
    timed("kernel_blocks", blocks, ["blocker_id", "blocked_id", "created_at"], ((world.reader, b, when) for b in world.blocked))

    tag_rows: list[tuple[str, int]] = []
    mention_rows: list[tuple[int, int]] = []

    def post_rows() -> Iterator[tuple[Any, ...]]:
        for post_id in range(1, world.post_count + 1):
            author, kind, target = world.authors[post_id], world.kinds[post_id], world.targets[post_id]
            body = ""
            if kind != REPOST:
                body, tags, mentioned = post_text(rng, world, author)
                if world.deleted[post_id]:
                    body = ""
                else:
                    tag_rows.extend((tag, post_id) for tag in tags)
                    mention_rows.extend((post_id, user_id) for user_id in mentioned)
            yield (
                post_id, author, body, world.created_at(post_id),
                target if kind == REPLY else None, target if kind == QUOTE else None, target if kind == REPOST else None,
                world.roots[post_id] or None, world.like_counts[post_id], world.reposts[post_id], world.replies[post_id],
                bool(world.deleted[post_id]),
            )  # fmt: skip

    post_columns = [
        "id", "author_id", "text", "created_at", "reply_to_id", "quote_of_id", "repost_of_id", "root_id",
        "likes_count", "reposts_count", "replies_count", "deleted",
    ]  # fmt: skip
    timed("feed_posts", posts, post_columns, post_rows())
    timed("feed_hashtags", hashtags, ["tag", "post_id"], tag_rows)
    timed("feed_mentions", mentions, ["post_id", "user_id"], mention_rows)
    liked_at = timedelta(minutes=5)
    like_rows = ((post_id, user_id, world.created_at(post_id) + liked_at) for post_id, user_id in world.like_rows)
    timed("feed_likes", likes, ["post_id", "user_id", "created_at"], like_rows)
    return timings


def finish_load(kernel: Kernel, analyze: bool) -> float:
    """Sequences past the explicit ids (PostgreSQL), statistics, and a checkpointed WAL (SQLite)."""
    started = time.perf_counter()
    engine = kernel.db.engine
    if kernel.db.is_sqlite:
        with engine.connect() as connection:
            # Straight to the driver, which is in autocommit mode: a checkpoint can't run inside a transaction.
            driver = connection.connection.driver_connection
            if analyze:
                driver.execute("ANALYZE")
            driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in ("kernel_users", "feed_posts"):
                connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                )
            connection.exec_driver_sql("VACUUM ANALYZE")
    kernel.db.dispose()  # the bulk-load connection's big cache goes with it
    return time.perf_counter() - started


# In process ------------------------------------------------------------------------------------------


def sample(call: Callable[[], Any], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - started) / 1e6)
    return samples


@contextlib.contextmanager
def recording(engine: sqlalchemy.Engine) -> Iterator[tuple[list[Any], list[str]]]:
    """The statements executed meanwhile (as SQLAlchemy objects) and the SQL sent to the driver."""
    statements: list[Any] = []
    cursor_sql: list[str] = []

    def before_execute(conn: Any, clauseelement: Any, multiparams: Any, params: Any, execution_options: Any) -> None:
        statements.append(clauseelement)

    def before_cursor_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        cursor_sql.append(statement)

    event.listen(engine, "before_execute", before_execute)
    event.listen(engine, "before_cursor_execute", before_cursor_execute)
    try:
        yield statements, cursor_sql
    finally:
        event.remove(engine, "before_execute", before_execute)
        event.remove(engine, "before_cursor_execute", before_cursor_execute)


def timeline_statement(statements: list[Any]) -> Any:
    """The timeline query among a call's statements: the one that pages ``feed_posts`` newest first."""
    for statement in statements:
        if isinstance(statement, sqlalchemy.Select):
            sql = str(statement)
            if "FROM feed_posts" in sql and "ORDER BY feed_posts.id DESC" in sql and "LIMIT" in sql:
                return statement
    raise RuntimeError("home() ran no query that pages feed_posts newest first")


def literal_sql(kernel: Kernel, statement: Any) -> str:
    return str(statement.compile(dialect=kernel.db.engine.dialect, compile_kwargs={"literal_binds": True}))


def shortened(sql: str, one_line: bool = True) -> str:
    """The SQL (or a plan's line) with long lists of ids shown as their length."""

    def one(match: re.Match[str]) -> str:
        return f"IN (<{match.group(1).count(',') + 1} ids>)"

    def array(match: re.Match[str]) -> str:
        return f"'{{<{match.group(1).count(',') + 1} ids>}}'"

    sql = re.sub(r"IN \(([\d, ]{80,})\)", one, " ".join(sql.split()) if one_line else sql)
    return re.sub(r"'\{([\d,]{80,})\}'", array, sql)  # PostgreSQL's plans show the list as an array


def query_plan(kernel: Kernel, statement: Any) -> list[str]:
    sql = literal_sql(kernel, statement)
    with kernel.db.engine.connect() as connection:
        if kernel.db.is_sqlite:
            return [row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
        return [shortened(row[0], one_line=False) for row in connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql)]


@dataclass
class InProcess:
    latencies: list[Latency]
    statements: list[str]
    timeline_sql: str
    plan: list[str]
    page_span: int  # how far back from the newest post the first page reaches
    first_ids: list[int]


def measure_in_process(kernel: Kernel, world: World, runs: int, warmup: int) -> InProcess:
    feed = FEED.of(kernel)
    reader = kernel.user_by_id(world.reader)
    if reader is None:
        raise RuntimeError("the reader was not loaded")
    first = feed.home(reader, None, PAGE)
    if len(first.results) != PAGE or first.next_cursor is None:
        raise RuntimeError(f"the first page holds {len(first.results)} posts (next_cursor {first.next_cursor!r}), not {PAGE}")
    second = feed.home(reader, first.next_cursor, PAGE)
    if not second.results or second.results[0]["id"] >= first.results[-1]["id"]:
        raise RuntimeError("the second page does not follow the first")
    with recording(kernel.db.engine) as (statements, cursor_sql):
        feed.home(reader, None, PAGE)
    statement = timeline_statement(statements)
    rows = kernel.db.read(lambda conn: conn.execute(statement).all())[:PAGE]

    def page_one() -> Any:
        return feed.home(reader, None, PAGE)

    def page_two() -> Any:
        return feed.home(reader, first.next_cursor, PAGE)

    def timeline_query() -> Any:
        return kernel.db.read(lambda conn: conn.execute(statement).all())

    def following() -> Any:
        return kernel.following_ids(reader)

    blocked = kernel.blocked_ids(reader)

    def json_building() -> Any:
        return feed.to_json(rows, reader, blocked)

    latencies = [
        Latency("home(reader, None, 50): page 1", sample(page_one, runs, warmup)),
        Latency("home(reader, cursor, 50): page 2", sample(page_two, runs, warmup)),
        Latency("  its timeline SELECT alone (page 1)", sample(timeline_query, runs, warmup)),
        Latency("  following_ids(reader)", sample(following, runs, warmup)),
        Latency("  to_json(50 rows): the JSON", sample(json_building, runs, warmup)),
    ]
    return InProcess(
        latencies=latencies,
        statements=[shortened(sql) for sql in cursor_sql if not sql.startswith(("BEGIN", "COMMIT", "ROLLBACK"))],
        timeline_sql=shortened(literal_sql(kernel, statement)),
        plan=query_plan(kernel, statement),
        page_span=world.post_count - first.results[-1]["id"] + 1,
        first_ids=[post["id"] for post in first.results],
    )


# Over HTTP -------------------------------------------------------------------------------------------------


def measure_http(
    settings: Any, token: str, expected_ids: list[int], options: LoadOptions, workdir: Path, use_wrk: bool
) -> LoadResult:
    arguments = ["--data-dir", str(settings.data_dir)]
    if settings.database.url:
        arguments += ["--database-url", settings.database.url]
    path = f"/api/feed/home?limit={PAGE}"
    header = f"Authorization: Bearer {token}"
    with Server("kernel", workdir / "kernel-server.log", "/readyz", arguments) as server:
        answer = httpx.get(server.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        answer.raise_for_status()
        ids = [post["id"] for post in answer.json()["results"]]
        if ids != expected_ids:
            raise RuntimeError(f"GET {path} answered other posts than the service in process: {ids[:5]}...")
        result = harness.load_test(server.url, [path], [header], options, workdir, use_wrk)
        print(f"  GET {path:<24} {harness.describe(result)}", flush=True)
    return result


# Report ------------------------------------------------------------------------------------------------------


def print_report(
    backend: str, world: World, loads: list[tuple[str, int, float]], finish_seconds: float, analyzed: bool,
    measured: InProcess, http: LoadResult, generator: str, runs: int, warmup: int, load_average: float,
) -> None:  # fmt: skip
    print()
    print(f"Timeline benchmark on {backend}")
    print(
        f"  machine: {os.cpu_count()} cores; load average when measuring began: {load_average:.2f} (others' work skews the figures)"
    )
    load_total = sum(seconds for _, _, seconds in loads) + finish_seconds
    print(
        f"  bulk load: {load_total:.1f} s in all: {', '.join(f'{what} {seconds:.1f} s' for what, _, seconds in loads if seconds >= 0.05)},"
    )
    finishing = (
        "setval + VACUUM ANALYZE"
        if backend != "embedded SQLite"
        else ("ANALYZE + " if analyzed else "no ANALYZE; ") + "WAL checkpoint"
    )
    print(f"             then {finishing} {finish_seconds:.1f} s")
    rows = {what: count for what, count, _ in loads}
    print(
        f"  world: {rows['kernel_users']:,} users, {rows['feed_posts']:,} posts, {rows['feed_likes']:,} likes, "
        f"{rows['feed_hashtags']:,} hashtag rows, {rows['feed_mentions']:,} mention rows"
    )
    share = world.followee_posts / world.post_count
    print(
        f"  reader @{world.usernames[world.reader - 1]} (id {world.reader}) follows {len(world.followees):,} accounts "
        f"who wrote {world.followee_posts:,} posts ({share:.1%} of all); blocks {len(world.blocked)}"
    )
    print(f"  page 1 reaches back over the newest {measured.page_span:,} posts of the table")
    print()
    heading = f"in process ({runs} calls each, after {warmup})"
    print(f"  {heading:<40} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'max ms':>8}")
    for latency in measured.latencies:
        verdict = ""
        if latency.label.startswith("home("):
            verdict = f"  p95 <= {TARGET_P95_MS:.0f} ms: " + ("met" if latency.percentile(0.95) <= TARGET_P95_MS else "NOT met")
        print(
            f"  {latency.label:<40} {latency.percentile(0.50):8.2f} {latency.percentile(0.95):8.2f} "
            f"{latency.percentile(0.99):8.2f} {latency.mean:8.2f} {max(latency.samples_ms):8.2f}{verdict}"
        )
    print()
    print(f"  SQL statements in one home() call (page 1): {len(measured.statements)}")
    for sql in measured.statements:
        print(f"    {sql[:150]}{' ...' if len(sql) > 150 else ''}")
    print("  the timeline query:")
    print(f"    {measured.timeline_sql}")
    print("  its plan:")
    for line in measured.plan:
        print(f"    {line}")
    print()
    print(f"  over HTTP, load from {generator}")
    print(f"  {'':<36} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    problems = f"  !! {http.non_2xx} non-2xx, {http.errors} socket errors" if http.non_2xx or http.errors else ""
    print(f"  {'GET /api/feed/home?limit=50':<36} {http.rate:8,.0f} {http.p50_ms:8.2f} {http.p99_ms:8.2f}{problems}")


def run(args: argparse.Namespace, options: LoadOptions, use_wrk: bool) -> None:
    """Make, load, measure and report; the temporary folder and any throwaway database are removed after."""
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="everything-bench-")))
        server_url = normalise_database_url(args.database_url) if args.database_url else None
        database_url = stack.enter_context(throwaway_postgres(server_url)) if server_url else None
        backend = sqlalchemy.make_url(database_url).get_backend_name() if database_url else "embedded SQLite"
        settings = make_settings(workdir / "data", database_url)
        kernel = Kernel(settings)
        stack.callback(kernel.db.dispose)
        kernel.upgrade_database()
        if FEED.get(kernel) is None:
            raise RuntimeError("the feed plugin is not running in this deployment")
        print(f"making the world: {args.users:,} users, {args.posts:,} posts, {args.likes:,} likes ...", flush=True)
        started = time.perf_counter()
        world = make_world(args.users, args.posts, args.follows, args.blocks, args.likes, args.follow_active, args.seed)
        print(f"  made in {time.perf_counter() - started:.1f} s; loading into {backend} ...", flush=True)
        loads = load_world(kernel, world, args.seed)
        analyze = not kernel.db.is_sqlite or args.analyze
        finish_seconds = finish_load(kernel, analyze)
        load_average = os.getloadavg()[0]
        print(
            f"measuring in process ({args.runs} calls after {args.warmup_calls}; load average {load_average:.2f}) ...", flush=True
        )
        measured = measure_in_process(kernel, world, args.runs, args.warmup_calls)
        token = kernel.identity.create_token(world.reader, "timeline bench")["token"]
        kernel.db.dispose()  # the server opens its own connections
        print(
            "measuring over HTTP: uvicorn (uvloop, httptools, 1 worker, request logs on, to a file), "
            f"load from {harness.describe_load(options, use_wrk)}",
            flush=True,
        )
        http = measure_http(settings, token, measured.first_ids, options, workdir, use_wrk)
        print_report(
            backend,
            world,
            loads,
            finish_seconds,
            analyze,
            measured,
            http,
            harness.generator_name(use_wrk),
            args.runs,
            args.warmup_calls,
            load_average,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--users", type=int, default=100_000, help="users to load (default %(default)s)")
    add("--posts", type=int, default=1_000_000, help="posts to load (default %(default)s)")
    add("--follows", type=int, default=1_000, help="accounts the reader follows (default %(default)s)")
    add(
        "--follow-active",
        type=float,
        default=0.5,
        help="share of those drawn by posting activity, the rest uniformly (default %(default)s)",
    )
    add("--blocks", type=int, default=10, help="accounts the reader blocks (default %(default)s)")
    add("--likes", type=int, default=500_000, help="likes by random users (default %(default)s)")
    add("--runs", type=int, default=200, help="timed in-process calls per measurement (default %(default)s)")
    add("--warmup-calls", type=int, default=20, help="untimed in-process calls before each measurement (default %(default)s)")
    add("--analyze", action="store_true", help="SQLite: run ANALYZE after loading (the kernel never does; PostgreSQL always is)")
    add("--seed", type=int, default=1, help="random seed for the world (default %(default)s)")
    add(
        "--database-url",
        help="a PostgreSQL server URL, e.g. postgresql://postgres@127.0.0.1:5432/postgres; "
        "a throwaway database is created on it and dropped afterwards (default: embedded SQLite)",
    )
    harness.add_load_options(parser)
    parser.set_defaults(threads=1, connections=8)  # a few connections: the server has 4 database threads
    args = parser.parse_args()
    harness.exit_cleanly_on_sigterm()
    run(args, harness.load_options(args), use_wrk=not args.no_wrk)


if __name__ == "__main__":
    main()
