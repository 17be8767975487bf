"""The sandbox's demo cast: twenty people, who follows whom, who keeps whom in their address book.

Fixed on purpose: the logins are the same every run, so a demo script or a
bug report can name ``@maya_chen``. Humans are people to log in as; bots are
driven by the sandbox itself (plugins start them in ``seed_sandbox``).
"""

from __future__ import annotations

import random

from kernel.sandbox_world import Person

PREMIUM = ("premium",)

CAST: tuple[Person, ...] = (
    Person("maya_chen", "Maya Chen", "Product designer. Calls > meetings. Long $AAPL, longer on coffee.", PREMIUM,
           interests=("AAPL", "design", "coffee")),
    Person("sam_rivera", "Sam Rivera", "Student, night owl, learning to trade on paper first.", (),
           interests=("BTC", "study", "music")),
    Person("olivia_ops", "Olivia Park", "Runs this community. Ping me if something is broken.", PREMIUM, operator=True,
           interests=("community", "SPY")),
    Person("priya_k", "Priya Kapoor", "ML engineer. Chips, compilers, and $NVDA.", PREMIUM, interests=("NVDA", "ai")),
    Person("diego_m", "Diego Martinez", "Football on weekends, index funds on weekdays.", (), interests=("SPY", "football")),
    Person("hana_sato", "Hana Sato", "Podcaster. I host Spaces about tech and markets.", PREMIUM, interests=("TSLA", "podcasts")),
    Person("lucas_b", "Lucas Bernard", "Baker in Lyon. Bread is a technology.", (), interests=("bread", "food")),
    Person("amara_o", "Amara Okafor", "Fintech founder. Payments should be boring.", PREMIUM, interests=("PYPL", "fintech")),
    Person("noah_w", "Noah Williams", "Cyclist. Writes about cities and EVs.", (), interests=("TSLA", "cycling")),
    Person("zoe_l", "Zoe Laurent", "Photographer. Mostly light, sometimes $ETH.", (), interests=("ETH", "photography")),
    Person("omar_h", "Omar Haddad", "Crypto since 2013. Not financial advice.", PREMIUM, interests=("BTC", "ETH", "SOL")),
    Person("ingrid_n", "Ingrid Nilsson", "Climate scientist. Data or it didn't happen.", (), interests=("climate", "data")),
    Person("kenji_t", "Kenji Tanaka", "Game developer. Ask me about frame budgets.", (), interests=("gaming", "MSFT")),
    Person("fatima_z", "Fatima Zahra", "Economist. Rates, inflation, and long walks.", PREMIUM, interests=("SPY", "QQQ", "economics")),
    Person("leo_rossi", "Leo Rossi", "Jazz pianist. Occasional $AMZN shopper.", (), interests=("jazz", "AMZN")),
    Person("nina_v", "Nina Volkova", "Chess coach. Thinks three moves ahead, trades one.", (), interests=("chess", "GOOGL")),
    Person("grace_ho", "Grace Ho", "Nurse. Here for the Spaces and the people.", (), interests=("health", "community")),
    Person("ringo_bot", "Ringo Bot", "A bot. Call me: I answer at once with a 440 Hz tone and a test picture.", PREMIUM, bot=True),
    Person("tess_bot", "Tess Bot", "A bot. Call me for a video check: a 660 Hz tone and a test picture.", PREMIUM, bot=True),
    Person("radio_bot", "Radio Bot", "A bot that hosts a live Space and keeps talking (a tone, honestly).", PREMIUM, bot=True),
)


def follows(rng: random.Random) -> list[tuple[str, str]]:
    """Who follows whom: everyone follows a handful of people; the first logins are well followed; bots are followed back."""
    humans = [person.username for person in CAST if not person.bot]
    bots = [person.username for person in CAST if person.bot]
    pairs: set[tuple[str, str]] = set()
    for follower in humans:
        others = [name for name in humans if name != follower]
        for followee in rng.sample(others, rng.randint(4, 8)):
            pairs.add((follower, followee))
        pairs.add((follower, "hana_sato") if follower != "hana_sato" else (follower, "maya_chen"))
        pairs.add((follower, rng.choice(bots)))
    for bot in bots:
        pairs.add((bot, "maya_chen"))
    # The main login follows everyone, so her timeline is full from the start.
    pairs.update(("maya_chen", name) for name in humans + bots if name != "maya_chen")
    return sorted(pairs)


def contacts(rng: random.Random) -> list[tuple[str, str, str]]:
    """(owner, other, nickname): a few people each keep in their address book; the bots are in every human's."""
    humans = [person for person in CAST if not person.bot]
    bots = [person for person in CAST if person.bot]
    entries: set[tuple[str, str, str]] = set()
    for owner in humans:
        others = [person for person in humans if person.username != owner.username]
        for other in rng.sample(others, 3):
            entries.add((owner.username, other.username, other.display_name.split()[0]))
        for bot in bots:
            entries.add((owner.username, bot.username, bot.display_name))
    return sorted(entries)
