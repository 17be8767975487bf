"""The feed's part of the sandbox's demo world: a few days of posts, replies, likes and reposts by the cast.

Everything is written through the feed's own service, as a request would
write it (:func:`plugins.feed.actions.publish`, :meth:`Feed.like`,
:func:`plugins.feed.actions.repost`), so the rules hold: the 280-character
limit and its premium long form, mentions, hashtags, cashtags, notifications.
The service stamps every post "now"; afterwards this module back-dates the
rows in the feed's own tables, so the demo reads like a few lived-in days.
Timelines are ordered by id, so posts are written oldest first: a back-dated
time then agrees with a post's place in every timeline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio.to_thread
from sqlalchemy import Connection, update

from kernel import ApiError, Kernel, SandboxWorld, User
from plugins.feed import actions
from plugins.feed.actions import feed_of
from plugins.feed.models import likes, posts

log = logging.getLogger("everything.feed")

# How far back the seeded conversation reaches, and how close to "now" it stops.
HISTORY = timedelta(days=4)
QUIET_BEFORE_NOW = timedelta(minutes=20)


@dataclass(frozen=True)
class Line:
    """One post of the script: ``key`` names it for the replies that answer it."""

    key: str
    author: str
    text: str
    reply_to: str | None = None


# Top-level posts, oldest first: each person writes about their bio and interests.
POSTS: tuple[Line, ...] = (
    Line("welcome", "olivia_ops",
         "Welcome to everyone who joined this week! Say hi, follow a few people, and tell me or @grace_ho if anything "
         "looks broken. #community #welcome"),
    Line("settings_copy", "maya_chen",
         "Redesigned our settings page three times before noticing the real problem was the copy, not the layout. "
         "Words are design too. #design"),
    Line("bored_gpu", "priya_k",
         "Spent the day profiling a kernel that turned out to be waiting on memory, not compute. The GPU was bored. "
         "#ai #compilers $NVDA"),
    Line("week_one", "sam_rivera",
         "Paper trading, week one: bought a tiny slice of $BTC, checked the price forty times, learned nothing except "
         "that I should be studying. #study"),
    Line("episode", "hana_sato",
         "New episode is up: does anyone still need to own a car? @noah_w was a brilliant guest. #podcasts $TSLA"),
    Line("starter", "lucas_b",
         "The starter is lively again after the cold snap. Tomorrow's loaves will be good, I can smell it already. "
         "#bread"),
    Line("boring", "amara_o",
         "Payments should be boring. If your customers notice the checkout, something went wrong. #fintech $PYPL"),
    Line("bike_lane", "noah_w",
         "Rode in along the new protected bike lane. Twelve minutes, zero close passes. Build more of these. "
         "#cycling #cities"),
    Line("golden_hour", "zoe_l",
         "Golden hour lasted about four minutes tonight and I caught two of them. #photography"),
    Line("this_time", "omar_h",
         "Every cycle someone says this time is different. Sometimes they're right, mostly they're early. "
         "$BTC $ETH $SOL. Not financial advice. #crypto"),
    Line("weather", "ingrid_n",
         "Reminder: one warm week is weather. Thirty years of warm weeks is climate. Plot the whole series before you "
         "argue about it. #climate #data"),
    Line("particles", "kenji_t",
         "Frame budget is 16.6 ms and the particle system alone wanted 9. Culprit: sorting every particle every frame. "
         "Sort once, keep it sorted, done. #gamedev #gaming"),
    Line("prints", "fatima_z",
         "This month's inflation print will move rate expectations more than anything said at a podium. Watching "
         "$SPY and $QQQ, not the headlines. #economics"),
    Line("set", "leo_rossi",
         "Played a three-hour set tonight. The best tune was one nobody requested and nobody will remember. "
         "That's jazz. #jazz"),
    Line("hope_chess", "nina_v",
         "Told my students: don't play the move you hope works, play the move that still works when your opponent "
         "sees it. Probably applies to $GOOGL too. #chess"),
    Line("shift", "grace_ho",
         "Twelve-hour shift done. Drink water, sleep, and please stop searching your symptoms at 3 a.m. #health"),
    Line("late_goal", "diego_m",
         "Lost 2-1 to a goal in the 89th minute. Still less painful than checking $SPY every hour. #football"),
    Line("prototype", "maya_chen",
         "Third coffee and the prototype finally feels right. @priya_k, want to try it before the demo? "
         "#coffee #design"),
    Line("advice_sam", "omar_h",
         "@sam_rivera paper first is the right call. Size small, write down why you bought, and reread it when you "
         "want to panic-sell. $BTC #crypto"),
    Line("wettest", "ingrid_n",
         "Our station logged the wettest month in its record. The raw data is online for anyone who wants to check "
         "my plots. #data #climate"),
    Line("demos", "priya_k",
         "Hot take: most AI demos are a good prompt and a patient presenter. The real work is the evaluation set "
         "nobody wants to build. #ai"),
    Line("space_tonight", "hana_sato",
         "Hosting a Space tonight on markets and tech with @fatima_z and @omar_h. Bring questions, not tips. "
         "#podcasts"),
    Line("patch", "kenji_t",
         "Shipped a patch for a crash only three players ever hit. All three wrote thank-you notes. $MSFT still "
         "hasn't called. #gaming"),
    Line("print_sold", "zoe_l",
         "Sold a print and put half of it into $ETH on paper, to see how it feels. Like a light meter that never "
         "settles. #photography"),
    Line("belt_drive", "noah_w",
         "Test-rode an e-bike with a belt drive. Quiet, clean, no oil on my trousers. $TSLA isn't the only EV story "
         "in town. #cycling #ev"),
    Line("ledger", "amara_o",
         "How we keep payments boring, in three rules.\n\n"
         "One: money is integers. Cents, never floats.\n"
         "Two: every transfer is two entries that sum to zero. If the ledger doesn't balance at midnight, nobody "
         "goes home.\n"
         "Three: the happy path is easy. Design the refund, the chargeback and the timeout first.\n\n"
         "Your users should never notice us. Thanks @olivia_ops for asking me to write this up. "
         "#fintech #payments $PYPL $V $MA"),
    Line("technology", "lucas_b",
         "Someone asked me if bread is really a technology. Flour, water, salt, time and a living culture: yes. "
         "@maya_chen, come by the shop when you're in Lyon. #bread #food"),
    Line("cooling", "fatima_z",
         "The labour market is cooling, not cracking. Those are different charts and they deserve different "
         "headlines. #economics"),
    Line("playlist", "sam_rivera",
         "Exam playlist: lo-fi for reading, drum and bass for problem sets, silence for the exam itself. "
         "#music #study"),
    Line("hiccup", "olivia_ops",
         "Spaces had a hiccup earlier; it's fixed now. Thanks @kenji_t for the clear bug report, screenshots and "
         "all. #community"),
    Line("metronome", "leo_rossi",
         "Ordered a metronome on $AMZN. It arrived one beat late. #jazz"),
    Line("blitz", "nina_v",
         "Blitz tournament at the club this weekend. Beginners welcome, bring a clock if you have one. #chess"),
    Line("sleep_space", "grace_ho",
         "The Space about sleep and shift work was lovely. Thank you @hana_sato for hosting, and everyone who "
         "shared. #health #community"),
    Line("index", "diego_m",
         "Index funds are boring, which is the point. Automatic monthly buy of $SPY, then off to watch football. "
         "#investing #football"),
    Line("keynote", "maya_chen",
         "Watched the keynote. The hardware is gorgeous; the software needs a designer with a red pen. Still long "
         "$AAPL. #design"),
    Line("fusion", "priya_k",
         "Compilers are the quiet heroes of AI. Fusing two kernels saved us more time than the new GPUs did. "
         "$NVDA will be fine either way. #ai #compilers"),
    Line("layers", "omar_h",
         "$SOL fees still tiny, $ETH still the settlement layer, $BTC still the one my uncle has heard of. #crypto"),
    Line("fog", "zoe_l",
         "Morning fog over the river, shot on a 35 mm at f/2, no edits. Some days the light does all the work. "
         "#photography"),
    Line("tree_cover", "ingrid_n",
         "Glad to see @noah_w writing about cities and heat. Tree cover is climate policy you can stand under. "
         "#climate #cities"),
    Line("ringo", "kenji_t",
         "Called @ringo_bot to test my new headset and it answered at once with a 440 Hz tone. Best customer "
         "service I've had all year. #gaming"),
    Line("irony", "hana_sato",
         "$TSLA moved more while I recorded an episode about not watching prices than it did all last week. "
         "Irony noted. #podcasts"),
    Line("fraud", "amara_o",
         "Fintech founders: your fraud model is a product, not a back-office chore. Staff it like one. #fintech"),
)

# Replies, each after the post it answers (a reply may answer a reply).
REPLIES: tuple[Line, ...] = (
    Line("week_one_r1", "omar_h",
         "Forty checks in week one is normal. By week ten you'll forget your password. Study first.", "week_one"),
    Line("week_one_r2", "sam_rivera", "@omar_h deal. Closing the app until my exam is over.", "week_one_r1"),
    Line("episode_r1", "noah_w",
         "Thanks for having me! Short version: most trips are under 5 km, and for most of them a bike beats a car.",
         "episode"),
    Line("starter_r1", "maya_chen", "The most wholesome post on here today. Save me a loaf.", "starter"),
    Line("starter_r2", "lucas_b", "@maya_chen the first one out of the oven is yours.", "starter_r1"),
    Line("this_time_r1", "fatima_z",
         "Early and wrong look identical for a very long time. Position sizing is the only honest answer.",
         "this_time"),
    Line("particles_r1", "priya_k",
         "Sorting every frame is like rereading the whole book for each page. Nice find.", "particles"),
    Line("prints_r1", "diego_m",
         "Translation for those of us who just own $SPY: keep buying, stop reading?", "prints"),
    Line("prints_r2", "fatima_z", "@diego_m pretty much. Time in the market beats reading about the market.",
         "prints_r1"),
    Line("shift_r1", "ingrid_n", "Thank you for what you do. Water and sleep are underrated data points.", "shift"),
    Line("late_goal_r1", "grace_ho", "Losing in the 89th minute should count as a health issue.", "late_goal"),
    Line("demos_r1", "kenji_t",
         "Same in games: the demo is one perfect level, the game is the other forty.", "demos"),
    Line("space_tonight_r1", "omar_h", "I'll be there. I bring the questions, @fatima_z brings the charts.",
         "space_tonight"),
    Line("ledger_r1", "olivia_ops", "Saving this. Boring payments are exactly what a community wants.", "ledger"),
    Line("metronome_r1", "nina_v", "A jazz metronome. Working as intended.", "metronome"),
    Line("keynote_r1", "noah_w", "Red pen energy. Which screen bothered you most?", "keynote"),
    Line("keynote_r2", "maya_chen", "@noah_w settings. It's always settings.", "keynote_r1"),
)

REPOSTS = 9


@dataclass
class _Event:
    """Something to write at ``at``: a post of the script, or a repost of one (``line`` is None)."""

    at: datetime
    author: str
    line: Line | None = None
    repost_of: str | None = None


def _plan(world: SandboxWorld, humans: list[str]) -> list[_Event]:
    """When each post, reply and repost happens, oldest first; every choice from ``world.random``."""
    rng = world.random
    latest = world.now - QUIET_BEFORE_NOW
    start = world.now - HISTORY
    lines = [line for line in POSTS if line.author in humans]
    slot = (latest - start) / max(len(lines), 1)
    when: dict[str, datetime] = {}
    events: list[_Event] = []
    for index, line in enumerate(lines):
        # One post per slot, somewhere inside it: spread out, in script order, never two at once.
        at = start + slot * index + slot * rng.uniform(0.1, 0.9)
        when[line.key] = at
        events.append(_Event(at, line.author, line))
    for line in REPLIES:
        parent = when.get(line.reply_to or "")
        if parent is None or line.author not in humans:
            continue
        at = min(parent + timedelta(minutes=rng.uniform(4, 240)), world.now - timedelta(minutes=2))
        when[line.key] = at
        events.append(_Event(at, line.author, line))
    for line in rng.sample(lines, min(REPOSTS, len(lines))):
        reposter = rng.choice([name for name in humans if name != line.author])
        at = min(when[line.key] + timedelta(minutes=rng.uniform(20, 600)), world.now - timedelta(minutes=1))
        events.append(_Event(at, reposter, repost_of=line.key))
    events.sort(key=lambda event: event.at)
    return events


async def seed(kernel: Kernel, world: SandboxWorld) -> None:
    """Write the demo conversation, back-date it, like and repost some of it; note what was seeded."""
    humans = [person.username for person in world.humans if person.username in world.users]
    events = _plan(world, humans)
    written: dict[str, int] = {}  # script key -> post id
    times: dict[int, datetime] = {}  # post id -> when it was "written"
    reposts = 0
    for event in events:
        author = world.user(event.author)
        try:
            if event.line is not None:
                reply_to = written.get(event.line.reply_to) if event.line.reply_to else None
                if event.line.reply_to and reply_to is None:
                    continue  # its parent was refused; a reply to nothing would read oddly
                post = await actions.publish(kernel, author, event.line.text, reply_to=reply_to)
                written[event.line.key] = post["id"]
            else:
                target = written.get(event.repost_of or "")
                if target is None:
                    continue
                post, created = await actions.repost(kernel, author, target)
                if not created:
                    continue
                reposts += 1
            times[post["id"]] = event.at
        except ApiError as error:
            # The feed's rules win over the script (an operator may have moved long posts to another plan).
            log.warning("sandbox: feed refused @%s's %s: %s", event.author, event.line.key if event.line else "repost", error)
    liked = await _like(kernel, world, humans, written, times)
    await anyio.to_thread.run_sync(kernel.db.write, lambda conn: _backdate(conn, times, liked))
    replies = sum(1 for line in REPLIES if line.key in written)
    world.note(
        f"feed: {len(written) - replies} posts, {replies} replies, {reposts} reposts and {len(liked)} likes "
        f"over the last {HISTORY.days} days, at /feed/ and /feed/explore"
    )


async def _like(
    kernel: Kernel, world: SandboxWorld, humans: list[str], written: dict[str, int], times: dict[int, datetime]
) -> dict[tuple[int, int], datetime]:
    """Likes from the cast: a few on most posts, more on some, none on one's own. (post id, user id) -> when."""
    rng = world.random
    feed = feed_of(kernel)
    replies = {line.key for line in REPLIES}
    liked: dict[tuple[int, int], datetime] = {}
    for key, post_id in written.items():
        line = _line(key)
        # Replies get a nod or two; a post a handful, and one in five draws a crowd.
        count = rng.randint(0, 2) if key in replies else rng.choice((1, 2, 3, 3, 4, 5, 6, 9))
        others = [name for name in humans if name != line.author]
        for name in rng.sample(others, min(count, len(others))):
            user: User = world.user(name)
            try:
                await anyio.to_thread.run_sync(feed.like, user, post_id, True)
            except ApiError as error:
                log.warning("sandbox: feed refused @%s's like of %s: %s", name, key, error)
                continue
            posted = times[post_id]
            liked[(post_id, user.id)] = posted + (world.now - posted) * rng.uniform(0.05, 0.9)
    return liked


def _line(key: str) -> Line:
    return next(line for line in (*POSTS, *REPLIES) if line.key == key)


def _backdate(conn: Connection, times: dict[int, datetime], liked: dict[tuple[int, int], datetime]) -> None:
    """Give the seeded posts and likes their planned times (stored naive UTC, like every feed timestamp)."""
    for post_id, at in times.items():
        conn.execute(update(posts).where(posts.c.id == post_id).values(created_at=at))
    for (post_id, user_id), at in liked.items():
        conn.execute(update(likes).where(likes.c.post_id == post_id, likes.c.user_id == user_id).values(created_at=at))

