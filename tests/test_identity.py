"""Identity through the API: sign-up, log-in, sessions, tokens, rate limits and CSRF."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from kernel import create_app
from tests.conftest import PASSWORD, LiveServer, assert_error, make_settings, sign_up

USER_KEYS = {"username", "display_name", "bio", "verified", "followers", "following"}


def test_signup_returns_201_with_the_user_object(client: TestClient) -> None:
    response = client.post("/api/auth/signup", json={"username": "Alice_1", "password": PASSWORD, "display_name": "Alice"})
    assert response.status_code == 201
    assert response.json() == {
        "username": "Alice_1",
        "display_name": "Alice",
        "bio": "",
        "verified": False,
        "followers": 0,
        "following": 0,
    }


def test_signup_without_display_name_uses_the_username(client: TestClient) -> None:
    response = client.post("/api/auth/signup", json={"username": "plainuser", "password": PASSWORD})
    assert response.json()["display_name"] == "plainuser"


def test_signup_needs_no_phone_number_or_email(client: TestClient) -> None:
    response = client.post("/api/auth/signup", json={"username": "nophone", "password": PASSWORD})
    assert response.status_code == 201


@pytest.mark.parametrize("username", ["abc", "a" * 16, "has space", "dash-name", "émile", "", "semi;colon"])
def test_signup_refuses_malformed_usernames_naming_the_field(client: TestClient, username: str) -> None:
    response = client.post("/api/auth/signup", json={"username": username, "password": PASSWORD})
    error = assert_error(response, 422, "validation_error")
    assert error["field"] == "username"


@pytest.mark.parametrize("username", ["admin", "ADMIN", "settings", "login", "signup", "static", "echo", "calls", "Feed", "trading"])
def test_signup_refuses_reserved_names_and_plugin_names(client: TestClient, username: str) -> None:
    response = client.post("/api/auth/signup", json={"username": username, "password": PASSWORD})
    error = assert_error(response, 422, "username_reserved")
    assert error["field"] == "username"


def test_usernames_are_unique_without_regard_to_case(client: TestClient) -> None:
    assert client.post("/api/auth/signup", json={"username": "CaseUser", "password": PASSWORD}).status_code == 201
    response = client.post("/api/auth/signup", json={"username": "caseuser", "password": PASSWORD})
    assert_error(response, 409, "username_taken")


def test_concurrent_signups_of_one_name_give_exactly_one_201(live_server: LiveServer) -> None:
    async def race() -> list[int]:
        async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
            requests = [
                http.post("/api/auth/signup", json={"username": "RaceName" if i % 2 else "racename", "password": PASSWORD})
                for i in range(8)
            ]
            return [response.status_code for response in await asyncio.gather(*requests)]

    statuses = asyncio.run(race())
    assert sorted(statuses) == [201] + [409] * 7


def test_short_password_is_refused_naming_the_field(client: TestClient) -> None:
    response = client.post("/api/auth/signup", json={"username": "shortpw", "password": "1234567"})
    error = assert_error(response, 422, "validation_error")
    assert error["field"] == "password"


def test_signup_with_missing_field_names_it(client: TestClient) -> None:
    error = assert_error(client.post("/api/auth/signup", json={"username": "nopass"}), 422, "validation_error")
    assert error["field"] == "password"


def test_refused_signup_creates_nothing(client: TestClient) -> None:
    client.post("/api/auth/signup", json={"username": "ghostuser", "password": "short"})
    assert client.get("/api/users/ghostuser").status_code == 404


def test_login_sets_an_httponly_lax_session_cookie(app: Starlette) -> None:
    sign_up(app, "loginuser")
    fresh = TestClient(app)
    response = fresh.post("/api/auth/login", json={"username": "LOGINUSER", "password": PASSWORD})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("everything_session=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert response.json()["user"]["username"] == "loginuser"
    assert fresh.get("/api/me").json()["username"] == "loginuser"


def test_session_cookie_is_secure_behind_https(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = create_app(make_settings(tmp_path / "data", server={"https": True}))
    with TestClient(app) as client:
        response = client.post("/api/auth/signup", json={"username": "secureone", "password": PASSWORD})
    assert "Secure" in response.headers["set-cookie"]


def test_wrong_password_is_401(app: Starlette, client: TestClient) -> None:
    sign_up(app, "wrongpw")
    assert_error(client.post("/api/auth/login", json={"username": "wrongpw", "password": "not it at all"}), 401, "invalid_credentials")
    assert_error(client.post("/api/auth/login", json={"username": "nobodyhere", "password": PASSWORD}), 401, "invalid_credentials")


def test_me_returns_the_user_with_plans(alice: TestClient) -> None:
    body = alice.get("/api/me").json()
    assert USER_KEYS <= set(body)
    assert body["username"] == "alice"
    assert body["plans"] == ["free"]


def test_me_without_credentials_is_401(client: TestClient) -> None:
    assert_error(client.get("/api/me"), 401, "unauthorized")


def test_logout_ends_the_session_on_the_server(app: Starlette, alice: TestClient) -> None:
    cookie = alice.cookies["everything_session"]
    assert alice.post("/api/auth/logout").status_code == 204
    replay = TestClient(app)
    replay.cookies.set("everything_session", cookie)
    assert_error(replay.get("/api/me"), 401, "unauthorized")


def test_sessions_are_listed_and_revocable(app: Starlette, alice: TestClient) -> None:
    other = TestClient(app)
    other.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    sessions = alice.get("/api/auth/sessions").json()["results"]
    assert len(sessions) == 2
    assert sum(session["current"] for session in sessions) == 1
    theirs = next(session for session in sessions if not session["current"])
    assert alice.delete(f"/api/auth/sessions/{theirs['id']}").status_code == 204
    assert other.get("/api/me").status_code == 401
    assert alice.get("/api/me").status_code == 200


def test_token_is_shown_once_and_authenticates(app: Starlette, alice: TestClient) -> None:
    created = alice.post("/api/auth/tokens", json={"name": "my bot"})
    assert created.status_code == 201
    token = created.json()
    assert set(token) >= {"id", "name", "token"} and token["name"] == "my bot"
    listed = alice.get("/api/auth/tokens").json()["results"]
    assert [item["name"] for item in listed] == ["my bot"]
    assert all("token" not in item for item in listed)
    bot = TestClient(app, headers={"Authorization": f"Bearer {token['token']}"})
    assert bot.get("/api/me").json()["username"] == "alice"


def test_deleted_token_stops_working_at_once(app: Starlette, alice: TestClient) -> None:
    token = alice.post("/api/auth/tokens", json={"name": "short lived"}).json()
    bot = TestClient(app, headers={"Authorization": f"Bearer {token['token']}"})
    assert bot.get("/api/me").status_code == 200
    assert alice.delete(f"/api/auth/tokens/{token['id']}").status_code == 204
    assert_error(bot.get("/api/me"), 401, "invalid_token")


def test_deleting_another_users_token_is_404(alice: TestClient, bob: TestClient) -> None:
    token = alice.post("/api/auth/tokens", json={"name": "mine"}).json()
    assert_error(bob.delete(f"/api/auth/tokens/{token['id']}"), 404, "not_found")
    assert len(alice.get("/api/auth/tokens").json()["results"]) == 1


def test_unknown_bearer_token_is_401(client: TestClient) -> None:
    assert_error(client.get("/api/me", headers={"Authorization": "Bearer ev_nope"}), 401, "invalid_token")


def test_blank_token_name_is_refused(alice: TestClient) -> None:
    error = assert_error(alice.post("/api/auth/tokens", json={"name": "   "}), 422, "validation_error")
    assert error["field"] == "name"


def test_cookie_authenticated_change_without_csrf_header_is_refused(alice: TestClient) -> None:
    response = alice.post("/api/auth/tokens", json={"name": "sneaky"}, headers={"X-CSRF-Token": "forged"})
    assert_error(response, 403, "csrf_failed")
    del alice.headers["X-CSRF-Token"]
    assert_error(alice.post("/api/auth/tokens", json={"name": "sneaky"}), 403, "csrf_failed")
    assert alice.get("/api/auth/tokens").json()["results"] == []


def test_bearer_requests_need_no_csrf_token(app: Starlette, alice: TestClient) -> None:
    token = alice.post("/api/auth/tokens", json={"name": "bot"}).json()["token"]
    bot = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    assert bot.post("/api/auth/tokens", json={"name": "from bot"}).status_code == 201


def test_login_failures_are_rate_limited_per_username(app: Starlette, client: TestClient) -> None:
    sign_up(app, "targeted")
    for _ in range(10):
        assert client.post("/api/auth/login", json={"username": "targeted", "password": "guess guess"}).status_code == 401
    response = client.post("/api/auth/login", json={"username": "targeted", "password": PASSWORD})
    assert_error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0


def test_login_failures_are_rate_limited_per_client(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path / "data", auth={"login_failures_per_client": 3})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for name in ("first_", "second", "third_"):
            assert client.post("/api/auth/login", json={"username": name, "password": "guess guess"}).status_code == 401
        response = client.post("/api/auth/login", json={"username": "fourth", "password": "guess guess"})
    assert_error(response, 429, "rate_limited")
    assert "Retry-After" in response.headers


def test_profile_can_be_edited(alice: TestClient) -> None:
    response = alice.patch("/api/me", json={"display_name": "  Alice   in Wonderland ", "bio": "Curiouser"})
    assert response.status_code == 200
    assert response.json()["display_name"] == "Alice in Wonderland"
    assert alice.get("/api/users/alice").json()["bio"] == "Curiouser"


def test_too_long_bio_is_refused_and_nothing_changes(alice: TestClient) -> None:
    error = assert_error(alice.patch("/api/me", json={"bio": "x" * 161}), 422, "validation_error")
    assert error["field"] == "bio"
    assert alice.get("/api/me").json()["bio"] == ""


def test_password_change_needs_the_current_one_and_ends_other_sessions(app: Starlette, alice: TestClient) -> None:
    other = TestClient(app)
    other.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    refused = alice.put("/api/me/password", json={"current_password": "wrong one", "new_password": "a new password"})
    assert_error(refused, 403, "invalid_credentials")
    assert alice.put("/api/me/password", json={"current_password": PASSWORD, "new_password": "a new password"}).status_code == 204
    assert other.get("/api/me").status_code == 401
    assert alice.get("/api/me").status_code == 200
    assert TestClient(app).post("/api/auth/login", json={"username": "alice", "password": "a new password"}).status_code == 200


def test_username_with_a_trailing_newline_is_refused(alice: TestClient, client: TestClient) -> None:
    response = client.post("/api/auth/signup", json={"username": "alice\n", "password": PASSWORD})
    assert_error(response, 422, "validation_error")
    assert_error(client.get("/api/users/alice%0A"), 404, "not_found")


@pytest.mark.parametrize("name", ["a\u0000b", "bell\x07", "\u202eadmin", "zero\u200bwidth"])
def test_display_names_with_control_or_invisible_characters_are_refused(client: TestClient, name: str) -> None:
    response = client.post("/api/auth/signup", json={"username": "sneaky", "password": PASSWORD, "display_name": name})
    assert assert_error(response, 422, "validation_error")["field"] == "display_name"
    assert client.get("/api/users/sneaky").status_code == 404


def test_emoji_sequences_are_fine_in_display_names(client: TestClient) -> None:
    family = "The \U0001f468\u200d\U0001f469\u200d\U0001f467 family"
    response = client.post("/api/auth/signup", json={"username": "emojiuser", "password": PASSWORD, "display_name": family})
    assert response.status_code == 201
    assert response.json()["display_name"] == family


def test_bio_keeps_newlines_but_not_escape_codes(alice: TestClient) -> None:
    assert alice.patch("/api/me", json={"bio": "line one\nline two"}).status_code == 200
    error = assert_error(alice.patch("/api/me", json={"bio": "red \x1b[31m"}), 422, "validation_error")
    assert error["field"] == "bio"
    assert alice.get("/api/me").json()["bio"] == "line one\nline two"


def test_a_burst_of_simultaneous_guesses_is_rate_limited(live_server: LiveServer) -> None:
    httpx.post(f"{live_server.url}/api/auth/signup", json={"username": "burstme", "password": PASSWORD}, timeout=30)

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
            guesses = [http.post("/api/auth/login", json={"username": "burstme", "password": f"guess {i}"}) for i in range(25)]
            return [response.status_code for response in await asyncio.gather(*guesses)]

    statuses = asyncio.run(burst())
    assert statuses.count(401) == 10
    assert statuses.count(429) == 15


def test_revoking_ids_beyond_any_row_is_404(alice: TestClient) -> None:
    assert_error(alice.delete(f"/api/auth/tokens/{2**63}"), 404, "not_found")
    assert_error(alice.delete("/api/auth/sessions/99999999999"), 404, "not_found")


def test_login_with_a_nul_in_the_username_is_just_wrong(client: TestClient) -> None:
    assert_error(client.post("/api/auth/login", json={"username": "pg\u0000x", "password": PASSWORD}), 401, "invalid_credentials")


def test_json_body_must_be_declared_as_json(client: TestClient) -> None:
    body = '{"username": "blobuser", "password": "correct horse battery"}'
    response = client.post("/api/auth/signup", content=body, headers={"content-type": "text/plain"})
    assert_error(response, 415, "unsupported_media_type")
    response = client.post("/api/auth/signup", content=body)
    assert_error(response, 415, "unsupported_media_type")
