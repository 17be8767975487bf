"""A server killed with SIGKILL in the middle of concurrent transfers loses no money and keeps its books sound.

A real ``everything serve`` process takes transfers from several client
threads and is killed with ``kill -9`` while they are still sending, three
times over (each restart recovers what the kill before left). After each,
``everything payments audit`` (a process of its own, on the same settings and
data folder) must find no breach and every transfer the server had answered
201 must still be there. Then the server started again must show wallets whose
sum is what was funded; and a client retrying the requests that were in
flight at the kill with the same idempotency keys gets each done exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from kernel.app import Kernel
from kernel.settings import Settings
from plugins.payments.models import transactions
from plugins.payments.service import PAYMENTS
from tests.conftest import PASSWORD, make_settings, serve_env, serve_process

USERS = 6
CLIENTS = 6
FUNDS = 100_000
# Transfers answered before each kill, and kills: each kill lands among many more transfers in flight.
BEFORE_KILL = 100
ROUNDS = 3


def sign_up_with_token(url: str, username: str) -> str:
    with httpx.Client(base_url=url, timeout=30) as http:
        response = http.post("/api/auth/signup", json={"username": username, "password": PASSWORD})
        assert response.status_code == 201, response.text
        minted = http.post("/api/auth/tokens", json={"name": "crash test"}, headers={"X-CSRF-Token": response.headers["X-CSRF-Token"]})
        assert minted.status_code == 201, minted.text
        return minted.json()["token"]


@dataclass
class Sent:
    """What the clients saw: transfers answered 201, and requests the kill left without an answer."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    created: dict[int, str] = field(default_factory=dict)  # transaction id -> idempotency key
    unanswered: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (payer, body)
    unexpected: list[str] = field(default_factory=list)


def send_until_refused(url: str, tokens: dict[str, str], slot: str, sent: Sent, stop: threading.Event) -> None:
    """POST transfers between random users until the server stops answering (or ``stop``)."""
    chooser = random.Random(slot)
    names = list(tokens)
    with httpx.Client(base_url=url, timeout=10) as http:
        number = 0
        while not stop.is_set():
            payer, payee = chooser.sample(names, 2)
            number += 1
            body = {"to": payee, "amount": chooser.randint(1, 3_000), "idempotency_key": f"crash-{slot}-{number}"}
            try:
                response = http.post("/api/payments/transfers", json=body, headers={"Authorization": f"Bearer {tokens[payer]}"})
            except httpx.TransportError:
                with sent.lock:
                    sent.unanswered.append((payer, body))
                return
            with sent.lock:
                if response.status_code == 201:
                    sent.created[response.json()["id"]] = body["idempotency_key"]
                elif response.status_code != 409 or response.json()["error"]["code"] != "insufficient_funds":
                    sent.unexpected.append(f"{response.status_code} {response.text}")


def audit(workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "kernel.cli", "payments", "audit"]
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=120)


def wallets(url: str, tokens: dict[str, str]) -> dict[str, int]:
    with httpx.Client(base_url=url, timeout=30) as http:
        found = {}
        for name, token in tokens.items():
            response = http.get("/api/payments/wallet", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200, response.text
            found[name] = response.json()["balance"]
        return found


def kill_mid_transfers(url: str, process: subprocess.Popen[str], tokens: dict[str, str], round_: int, sent: Sent) -> None:
    """Have ``CLIENTS`` threads send transfers, then SIGKILL the server at a random moment after ``BEFORE_KILL`` more succeeded."""
    stop, before = threading.Event(), len(sent.created)
    clients = [threading.Thread(target=send_until_refused, args=(url, tokens, f"{round_}-{slot}", sent, stop)) for slot in range(CLIENTS)]
    for client in clients:
        client.start()
    deadline = time.monotonic() + 60
    while len(sent.created) < before + BEFORE_KILL:
        assert time.monotonic() < deadline, f"only {len(sent.created) - before} transfers in 60 s: {sent.unexpected[:3]}"
        assert all(client.is_alive() for client in clients), f"a client stopped before the kill: {sent.unexpected[:3]}"
        time.sleep(0.01)
    # Not right after an answer arrived here: anywhere in the server's work on the requests in flight.
    time.sleep(random.uniform(0, 0.05))
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    for client in clients:
        client.join(timeout=30)
    stop.set()
    assert process.returncode == -signal.SIGKILL


def assert_answered_transfers_kept(settings: Settings, sent: Sent) -> None:
    """Every transfer the server answered 201 was committed before the answer: none is lost."""
    kernel = Kernel(settings)
    try:
        answered = set(sent.created)
        found = kernel.db.read(lambda conn: set(conn.execute(select(transactions.c.id).where(transactions.c.id.in_(answered))).scalars()))
        assert found == answered
    finally:
        kernel.db.dispose()


def test_a_server_killed_mid_transfers_keeps_every_answered_transfer_and_sound_books(tmp_path: Path, database_url: str | None) -> None:
    env = serve_env(database_url)
    settings = make_settings(tmp_path / "everything-data", database_url)
    names = [f"crash{number}" for number in range(USERS)]
    # As an operator does first (the server migrates only the embedded SQLite by itself).
    upgraded = subprocess.run([sys.executable, "-m", "kernel.cli", "db", "upgrade"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert upgraded.returncode == 0, upgraded.stderr
    sent = Sent()
    for round_ in range(ROUNDS):
        with serve_process(tmp_path, env) as (url, process):
            if round_ == 0:
                tokens = {name: sign_up_with_token(url, name) for name in names}
                # Funded as an operator's credit is: the ledger's own code on the same database, beside the running server.
                kernel = Kernel(settings)
                try:
                    ledger = PAYMENTS.of(kernel).ledger
                    for name in names:
                        user = kernel.user(name)
                        assert user is not None
                        ledger.credit(user.id, FUNDS, "topup", "crash test funds")
                finally:
                    kernel.db.dispose()
            assert sum(wallets(url, tokens).values()) == USERS * FUNDS
            kill_mid_transfers(url, process, tokens, round_, sent)
        assert not sent.unexpected, sent.unexpected[:5]
        # The kill caught every client mid-request or between two: each found the server gone.
        assert len(sent.unanswered) == CLIENTS * (round_ + 1)
        checked = audit(tmp_path, env)
        assert checked.returncode == 0, checked.stderr
        assert "the ledger is sound" in checked.stderr
        assert_answered_transfers_kept(settings, sent)

    with serve_process(tmp_path, env) as (url, _):
        assert sum(wallets(url, tokens).values()) == USERS * FUNDS
        # The requests the kills left unanswered, sent again with their keys: each applies at most once.
        with httpx.Client(base_url=url, timeout=30) as http:
            for payer, body in sent.unanswered:
                headers = {"Authorization": f"Bearer {tokens[payer]}"}
                again = http.post("/api/payments/transfers", json=body, headers=headers)
                # 201: it had not been committed; 200: it had, and this is its answer; 409: not enough money now.
                assert again.status_code in (200, 201, 409), again.text
                if again.status_code == 200:  # committed by a killed server, never answered: not one of those answered
                    assert again.json()["id"] not in sent.created
                if again.status_code in (200, 201):
                    replay = http.post("/api/payments/transfers", json=body, headers=headers)
                    assert replay.status_code == 200 and replay.json() == again.json()
        assert sum(wallets(url, tokens).values()) == USERS * FUNDS
    checked = audit(tmp_path, env)
    assert checked.returncode == 0, checked.stderr
