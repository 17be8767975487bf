"""The polls plugin, tested with Everything's kit (sandbox/testing.py) as a feature team would."""

from __future__ import annotations

from sandbox.testing import WorldFactory

POLLS = {"polls": "everything_polls"}


def test_a_premium_author_adds_a_poll_to_their_post(everything: WorldFactory) -> None:
    world = everything(plugins=["feed"], extra=POLLS)
    alice = world.user("alice", plans=["premium"])
    post = alice.post("/api/feed/posts", json={"text": "Tea or coffee?"}).json()
    created = alice.post("/api/polls/polls", json={"post_id": post["id"], "question": "Which?", "options": ["Tea", "Coffee"]})
    assert created.status_code == 201
    assert [option["text"] for option in created.json()["options"]] == ["Tea", "Coffee"]


def test_creating_a_poll_is_premium(everything: WorldFactory) -> None:
    world = everything(plugins=["feed"], extra=POLLS)
    bobby = world.user("bobby")
    post = bobby.post("/api/feed/posts", json={"text": "Tea or coffee?"}).json()
    refused = bobby.post("/api/polls/polls", json={"post_id": post["id"], "question": "Which?", "options": ["Tea", "Coffee"]})
    assert refused.status_code == 402 and refused.json()["error"]["feature"] == "polls.create"


def test_everyone_votes_once_and_sees_the_results(everything: WorldFactory) -> None:
    world = everything(plugins=["feed"], extra=POLLS)
    alice = world.user("alice", plans=["premium"])
    bobby = world.user("bobby")
    post = alice.post("/api/feed/posts", json={"text": "Tea or coffee?"}).json()
    poll = alice.post("/api/polls/polls", json={"post_id": post["id"], "question": "Which?", "options": ["Tea", "Coffee"]}).json()
    voted = bobby.post(f"/api/polls/polls/{poll['id']}/votes", json={"option": 1}).json()
    assert [o["votes"] for o in voted["options"]] == [0, 1] and voted["your_vote"] == 1
    again = bobby.post(f"/api/polls/polls/{poll['id']}/votes", json={"option": 0})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_voted"


def test_the_post_page_shows_the_poll(everything: WorldFactory) -> None:
    world = everything(plugins=["feed"], extra=POLLS)
    alice = world.user("alice", plans=["premium"])
    post = alice.post("/api/feed/posts", json={"text": "Tea or coffee?"}).json()
    alice.post("/api/polls/polls", json={"post_id": post["id"], "question": "Which one?", "options": ["Tea", "Coffee"]})
    page = alice.get(f"/feed/posts/{post['id']}", headers={"accept": "text/html"}).text
    assert 'class="card polls-widget"' in page and "Which one?" in page


def test_a_poll_goes_only_on_ones_own_post(everything: WorldFactory) -> None:
    world = everything(plugins=["feed"], extra=POLLS)
    alice = world.user("alice", plans=["premium"])
    carol = world.user("carol", plans=["premium"])
    post = alice.post("/api/feed/posts", json={"text": "mine"}).json()
    refused = carol.post("/api/polls/polls", json={"post_id": post["id"], "question": "Q?", "options": ["A", "B"]})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_your_post"
