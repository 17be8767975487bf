"""The payments plugin's part of ``everything sandbox``: funded wallets, transfers between the cast, open requests.

Everything goes through the paths a person's requests take: each human tops
up with the sandbox's test card (a checkout paid on the sandbox provider,
credited by the same event a card page produces), then sends money with the
wallet's transfers and asks for it with payment requests. So the seeded
world obeys the ledger's rules (no overdraft, balanced transactions), the
notifications are the ones real use would leave, and ``everything payments
audit`` finds the books sound.

The ledger stamps every transaction with the time it is written, so the
seeded history is dated at the sandbox's start, not spread over past days:
back-dating would mean writing around the ledger.
"""

from __future__ import annotations

import random

from kernel import Kernel, SandboxWorld
from plugins.payments.billing_api import pay_with_card
from plugins.payments.money import money
from plugins.payments.sandbox_billing import NAME as SANDBOX_PROVIDER
from plugins.payments.sandbox_billing import PAYS
from plugins.payments.service import PAYMENTS, Payments

# Top-ups in whole dollars (times 100 for cents): enough to pay for a few dinners, not a fortune.
TOPUP_DOLLARS = (120, 150, 200, 250, 300, 400, 500)
# What people pay each other for, with a believable range in cents.
MEMOS: tuple[tuple[str, int, int], ...] = (
    ("pizza 🍕", 800, 2400),
    ("concert tickets", 4500, 9500),
    ("coffee", 350, 900),
    ("cab home", 1200, 3200),
    ("birthday gift for Lena", 1500, 4000),
    ("groceries", 1800, 5200),
    ("brunch", 1400, 3600),
    ("movie night", 900, 1800),
    ("book club snacks", 600, 1500),
    ("football pitch rental", 1000, 2500),
    ("half the Airbnb", 6000, 11000),
    ("sushi", 1600, 4200),
    ("gym day pass", 800, 1500),
    ("train tickets", 2500, 6000),
)

# How many transfers and who must be in some: the logins a demo starts with should have a full history.
TRANSFERS = 14
FEATURED = ("maya_chen", "sam_rivera", "olivia_ops")
# A pending request is one the payer has not answered yet: it is what makes the requests box look alive.
OPEN_REQUEST_NOTE = "concert tickets, your half"
OPEN_REQUEST_AMOUNT = 4200


async def seed(kernel: Kernel, world: SandboxWorld) -> None:
    """Top every human's wallet up, make transfers and payment requests among them, and note what was done."""
    payments = PAYMENTS.of(kernel)
    billing = payments.billing
    if billing.provider.name != SANDBOX_PROVIDER:
        # Only the sandbox provider takes the test card; with Stripe the money would have to be real.
        world.note(f"payments: billing is {billing.provider.name}, so no wallet was funded")
        return
    rng = world.random
    humans = [person.username for person in world.humans]
    balances: dict[str, int] = {}

    expiry = f"12/{(world.now.year + 3) % 100:02d}"
    for username in humans:
        user = world.user(username)
        # Within the operator's top-up limits, whatever they are.
        amount = min(max(rng.choice(TOPUP_DOLLARS) * 100, payments.settings.min_topup), payments.settings.max_topup)
        checkout = await billing.start_topup(user, amount, world.url)
        paid = await pay_with_card(billing, user.id, checkout["id"], PAYS, expiry, "123")
        if paid["status"] != "completed":
            raise RuntimeError(f"the top-up of @{username} was not completed: {paid['status']}")
        balances[username] = amount

    pairs = _transfer_pairs(humans, rng)
    sent = 0
    for payer_name, payee_name in pairs:
        memo, low, high = rng.choice(MEMOS)
        # Round to 50 cents, as people split bills, and never more than the payer holds.
        amount = min(rng.randint(low, high) // 50 * 50, balances[payer_name], payments.settings.max_transfer)
        if amount <= 0:
            continue
        await payments.transfer(world.user(payer_name), payee_name, amount, memo, f"sandbox-transfer-{sent}")
        balances[payer_name] -= amount
        balances[payee_name] += amount
        sent += 1

    requests = await _requests(payments, world, humans, balances)
    world.note(f"payments: {len(humans)} wallets topped up with the test card, {sent} transfers, {requests}")


def _transfer_pairs(humans: list[str], rng: random.Random) -> list[tuple[str, str]]:
    """(payer, payee) pairs: each featured login sends and receives at least once, the rest at random."""
    present = [name for name in FEATURED if name in humans]
    pairs: list[tuple[str, str]] = []
    for name in present:
        others = [other for other in humans if other != name]
        pairs.append((name, rng.choice(others)))
        pairs.append((rng.choice(others), name))
    while len(pairs) < TRANSFERS and len(humans) > 1:
        payer, payee = rng.sample(humans, 2)
        pairs.append((payer, payee))
    rng.shuffle(pairs)
    return pairs


async def _requests(payments: Payments, world: SandboxWorld, humans: list[str], balances: dict[str, int]) -> str:
    """One request paid (it shows in both histories as a request) and one left open for the main login to answer."""
    if len(humans) < 3:
        return "no payment requests"
    rng = world.random
    main = "maya_chen" if "maya_chen" in humans else humans[0]
    others = [name for name in humans if name != main]
    asker, debtor = rng.sample(others, 2)
    currency = payments.settings.currency

    # Paid: the main login asked for her share of a dinner and got it.
    paid = 0
    amount = min(1850, balances[debtor])
    if amount > 0:
        asked = await payments.requests.create(world.user(main), debtor, amount, "dinner at Nonna's")
        await payments.requests.accept(world.user(debtor), asked["id"])
        balances[debtor] -= amount
        balances[main] += amount
        paid = 1

    # Open: somebody waits on the main login, so her requests box has something to accept or decline.
    await payments.requests.create(world.user(asker), main, OPEN_REQUEST_AMOUNT, OPEN_REQUEST_NOTE)
    return f"{paid} paid and 1 open payment request (@{asker} asks @{main} for {money(OPEN_REQUEST_AMOUNT, currency)})"
