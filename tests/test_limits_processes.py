"""Global limits: log-in failures and sign-ups count across the processes of a deployment, through Redis.

Two `everything serve` processes on PostgreSQL and Redis (the deployment
kit's hosts, addressed one by one), with small limits, take attempts in
turn: the limit holds at its number for the deployment, not at that number
per process. Each test comes from a client address of its own (behind a
proxy, ``X-Forwarded-For``, which the servers trust from loopback), so that
the per-address counts of one test never reach another's. With its Redis
gone, a process keeps letting people in, counting in itself meanwhile.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.deployment_kit import Deployment, Host, deployment_marks
from tests.redis_kit import REDIS_SERVER, private_redis
from tests.test_pages import csrf_of

pytestmark = deployment_marks()

FAILURES_PER_USERNAME = 3
FAILURES_PER_CLIENT = 5
SIGNUPS_PER_CLIENT = 3

_addresses = (f"10.9.0.{number}" for number in itertools.count(1))


class LimitedDeployment(Deployment):
    """The kit's deployment with small limits; ``bus_url`` replaces its Redis when given."""

    def __init__(self, root: Path, hosts: int = 2, bus_url: str | None = None) -> None:
        super().__init__(root, hosts)
        self.bus_url = bus_url

    def env(self) -> dict[str, str]:
        limits = {
            "EVERYTHING_AUTH__LOGIN_FAILURES_PER_USERNAME": str(FAILURES_PER_USERNAME),
            "EVERYTHING_AUTH__LOGIN_FAILURES_PER_CLIENT": str(FAILURES_PER_CLIENT),
            "EVERYTHING_AUTH__SIGNUPS_PER_CLIENT_PER_HOUR": str(SIGNUPS_PER_CLIENT),
        }
        return {**super().env(), **limits, **({"EVERYTHING_BUS__URL": self.bus_url} if self.bus_url else {})}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with LimitedDeployment(tmp_path_factory.mktemp("limits")) as running:
        yield running


@pytest.fixture
def hosts(deployment: Deployment) -> list[Host]:
    deployment.mark_logs()
    return deployment.hosts


def from_address(address: str) -> dict[str, str]:
    """Headers that make a request come from ``address``, as a proxy in front of the servers says."""
    return {"X-Forwarded-For": address}


def sign_up(host: Host, username: str, address: str) -> httpx.Response:
    return httpx.post(f"{host.url}/api/auth/signup", json={"username": username, "password": PASSWORD}, headers=from_address(address), timeout=30)


def log_in(host: Host, username: str, password: str, address: str) -> httpx.Response:
    return httpx.post(f"{host.url}/api/auth/login", json={"username": username, "password": password}, headers=from_address(address), timeout=30)


def assert_rate_limited(answer: httpx.Response) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.json()["error"]["code"] == "rate_limited"
    assert int(answer.headers["Retry-After"]) >= 1


def test_failed_log_ins_to_one_username_across_two_processes_stop_at_the_configured_total(hosts: list[Host]) -> None:
    address = next(_addresses)
    assert sign_up(hosts[0], "guessed", address).status_code == 201
    in_turn = itertools.cycle(hosts)

    answers = [log_in(next(in_turn), "guessed", "wrong password", next(_addresses)) for _ in range(FAILURES_PER_USERNAME)]
    assert [answer.status_code for answer in answers] == [401] * FAILURES_PER_USERNAME

    for host in hosts:
        assert_rate_limited(log_in(host, "guessed", PASSWORD, next(_addresses)))


def test_failed_log_ins_from_one_address_across_two_processes_stop_at_the_configured_total(hosts: list[Host]) -> None:
    address = next(_addresses)
    in_turn = itertools.cycle(hosts)

    answers = [log_in(next(in_turn), f"nobody{number}", "wrong password", address) for number in range(FAILURES_PER_CLIENT)]
    assert [answer.status_code for answer in answers] == [401] * FAILURES_PER_CLIENT

    for host in hosts:
        assert_rate_limited(log_in(host, "nobody_more", "wrong password", address))


def test_a_successful_log_in_clears_the_usernames_count_on_every_process(hosts: list[Host]) -> None:
    assert sign_up(hosts[0], "forgetful", next(_addresses)).status_code == 201
    for host in hosts[: FAILURES_PER_USERNAME - 1]:
        assert log_in(host, "forgetful", "wrong password", next(_addresses)).status_code == 401
    assert log_in(hosts[-1], "forgetful", PASSWORD, next(_addresses)).status_code == 200

    answers = [log_in(host, "forgetful", "wrong password", next(_addresses)) for host in hosts[: FAILURES_PER_USERNAME - 1]]
    assert [answer.status_code for answer in answers] == [401] * len(answers)


def test_sign_ups_from_one_address_across_two_processes_stop_at_the_configured_total(hosts: list[Host]) -> None:
    address = next(_addresses)
    in_turn = itertools.cycle(hosts)

    answers = [sign_up(next(in_turn), f"crowd{number}", address) for number in range(SIGNUPS_PER_CLIENT)]
    assert [answer.status_code for answer in answers] == [201] * SIGNUPS_PER_CLIENT

    for host in hosts:
        assert_rate_limited(sign_up(host, "crowd_more", address))
    assert sign_up(hosts[0], "crowd_elsewhere", next(_addresses)).status_code == 201, "another address is not held back"


def test_a_sign_up_refused_for_a_taken_name_costs_the_address_nothing(hosts: list[Host]) -> None:
    address = next(_addresses)
    assert sign_up(hosts[0], "taken_one", address).status_code == 201
    for host in hosts:
        assert sign_up(host, "taken_one", address).status_code == 409
    answers = [sign_up(host, f"fresh_{host.name}", address) for host in hosts]
    assert [answer.status_code for answer in answers] == [201] * len(hosts)


def test_sign_ups_through_the_page_count_with_those_through_the_api(hosts: list[Host]) -> None:
    address = next(_addresses)
    answers = [sign_up(hosts[number % len(hosts)], f"by_api{number}", address) for number in range(SIGNUPS_PER_CLIENT)]
    assert [answer.status_code for answer in answers] == [201] * SIGNUPS_PER_CLIENT

    with httpx.Client(base_url=hosts[-1].url, headers={**from_address(address), "accept": "text/html"}, trust_env=False, timeout=30) as browser:
        token = csrf_of(browser.get("/signup").text)
        refused = browser.post("/signup", data={"username": "by_page", "password": PASSWORD, "csrf_token": token})
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    assert "Too many sign-ups" in refused.text


# Redis gone ------------------------------------------------------------------------------------------


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
def test_with_redis_unreachable_log_ins_still_work_and_failures_are_counted_in_the_process(tmp_path: Path) -> None:
    with private_redis() as redis, LimitedDeployment(tmp_path, hosts=1, bus_url=redis.url) as deployment:
        (host,) = deployment.hosts
        assert sign_up(host, "steady", next(_addresses)).status_code == 201
        redis.stop()

        assert log_in(host, "steady", PASSWORD, next(_addresses)).status_code == 200

        answers = [log_in(host, "steady", "wrong password", next(_addresses)) for _ in range(FAILURES_PER_USERNAME)]
        assert [answer.status_code for answer in answers] == [401] * FAILURES_PER_USERNAME
        assert_rate_limited(log_in(host, "steady", PASSWORD, next(_addresses)))
        assert "counting in this process" in host.log.read_text()
