"""Notifications: stored per user, pushed over realtime, counted in the navigation, listed, marked read."""

from __future__ import annotations

from starlette.applications import Starlette

from tests.conftest import assert_error, sign_up

HTML = {"accept": "text/html"}


def test_a_new_follower_is_notified_and_pushed_to_every_open_tab(recorder_app: Starlette) -> None:
    alice = sign_up(recorder_app, "alice", display_name="Alice")
    bob = sign_up(recorder_app, "bob_b")
    with bob.websocket_connect("/ws") as tab, bob.websocket_connect("/ws") as other_tab:
        tab.receive_json(), other_tab.receive_json()
        assert alice.put("/api/users/bob_b/follow").status_code == 200
        for ws in (tab, other_tab):
            pushed = ws.receive_json()
            assert pushed["type"] == "kernel.notification" and pushed["unread"] == 1
            assert pushed["notification"]["text"] == "Alice (@alice) followed you"
            assert pushed["notification"]["url"] == "/@alice"
            assert pushed["notification"]["actor"]["username"] == "alice"
    listed = bob.get("/api/notifications").json()
    assert listed["unread"] == 1 and listed["next_cursor"] is None
    assert listed["results"][0]["kind"] == "kernel.follow" and listed["results"][0]["read"] is False


def test_following_again_does_not_notify_again(recorder_app: Starlette) -> None:
    alice = sign_up(recorder_app, "alice")
    bob = sign_up(recorder_app, "bob_b")
    alice.put("/api/users/bob_b/follow")
    alice.put("/api/users/bob_b/follow")
    assert bob.get("/api/notifications").json()["unread"] == 1


def test_plugins_notify_through_the_kernel_service(recorder_app: Starlette) -> None:
    alice = sign_up(recorder_app, "alice")
    with alice.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "recorder.notify", "id": 1, "text": "Your export is ready"})
        pushed = ws.receive_json()
        reply = ws.receive_json()
    assert pushed["notification"]["kind"] == "recorder.note" and pushed["notification"]["text"] == "Your export is ready"
    assert reply["notification"] == pushed["notification"]["id"]
    assert alice.get("/api/notifications").json()["results"][0]["url"] == "/recorder/"


def test_marking_read_by_id_and_all_updates_the_unread_count_in_every_tab(recorder_app: Starlette) -> None:
    bob = sign_up(recorder_app, "bob_b")
    for name in ("alice", "carol", "dave"):
        sign_up(recorder_app, name).put("/api/users/bob_b/follow")
    ids = [item["id"] for item in bob.get("/api/notifications").json()["results"]]
    with bob.websocket_connect("/ws") as tab:
        assert tab.receive_json()["unread"] == 3
        assert bob.post("/api/notifications/read", json={"ids": [ids[0]]}).json() == {"unread": 2}
        assert tab.receive_json() == {"type": "kernel.notifications_read", "unread": 2}
        assert bob.post("/api/notifications/read", json={"all": True}).json() == {"unread": 0}
        assert tab.receive_json()["unread"] == 0
    assert all(item["read"] for item in bob.get("/api/notifications").json()["results"])


def test_someone_else_s_notification_cannot_be_marked_read(recorder_app: Starlette) -> None:
    bob = sign_up(recorder_app, "bob_b")
    carol = sign_up(recorder_app, "carol")
    sign_up(recorder_app, "alice").put("/api/users/bob_b/follow")
    bob_id = bob.get("/api/notifications").json()["results"][0]["id"]
    assert carol.post("/api/notifications/read", json={"ids": [bob_id]}).json() == {"unread": 0}
    assert bob.get("/api/notifications").json()["unread"] == 1


def test_notifications_are_listed_newest_first_a_page_at_a_time(recorder_app: Starlette) -> None:
    bob = sign_up(recorder_app, "bob_b")
    for number in range(5):
        sign_up(recorder_app, f"fan{number}").put("/api/users/bob_b/follow")
    first = bob.get("/api/notifications?limit=3").json()
    second = bob.get(f"/api/notifications?limit=3&cursor={first['next_cursor']}").json()
    names = [item["actor"]["username"] for item in first["results"] + second["results"]]
    assert names == ["fan4", "fan3", "fan2", "fan1", "fan0"] and second["next_cursor"] is None
    bob.post("/api/notifications/read", json={"ids": [first["results"][0]["id"]]})
    unread = bob.get("/api/notifications?unread=true").json()
    assert len(unread["results"]) == 4 and unread["unread"] == 4


def test_bad_notification_requests_are_refused(recorder_app: Starlette) -> None:
    bob = sign_up(recorder_app, "bob_b")
    assert_error(bob.post("/api/notifications/read", json={}), 422, "validation_error")
    assert_error(bob.post("/api/notifications/read", json={"ids": [], "all": True}), 422, "validation_error")
    assert_error(bob.post("/api/notifications/read", json={"ids": ["x"]}), 422, "validation_error")
    assert_error(bob.post("/api/notifications/read", json={"ids": [2**40]}), 422, "validation_error")
    assert_error(bob.get("/api/notifications?cursor=nonsense"), 422, "invalid_cursor")
    assert_error(bob.get("/api/notifications?limit=0"), 422, "validation_error")
    sign_up(recorder_app, "alice").get("/api/notifications")
    from starlette.testclient import TestClient

    assert_error(TestClient(recorder_app).get("/api/notifications"), 401, "unauthorized")


def test_the_navigation_counts_unread_and_the_page_lists_them(recorder_app: Starlette) -> None:
    alice = sign_up(recorder_app, "alice", display_name="Alice")
    bob = sign_up(recorder_app, "bob_b")
    alice.put("/api/users/bob_b/follow")
    home = bob.get("/", headers=HTML).text
    assert 'aria-label="Notifications, 1 unread"' in home and "data-unread-count>1<" in home
    page = bob.get("/notifications", headers=HTML).text
    assert "Alice (@alice) followed you" in page and "Mark all as read" in page
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    response = bob.post("/notifications/read", data={"csrf_token": token}, headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    assert bob.get("/api/notifications").json()["unread"] == 0
    assert "data-unread-count hidden>0<" in bob.get("/", headers=HTML).text
