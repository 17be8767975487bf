"""Pages: the layout, forms with CSRF protection, profiles with plugin actions, error pages."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.applications import Starlette
from starlette.testclient import TestClient

from kernel import create_app
from kernel.plugin.manager import BUNDLED_PLUGINS
from tests.conftest import PASSWORD, UserClient, make_settings, sign_up

HTML = {"accept": "text/html"}


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    assert match, "the form carries a CSRF token"
    return match.group(1)


def test_signup_page_creates_an_account_and_signs_in(app: Starlette) -> None:
    browser = TestClient(app)
    form = browser.get("/signup", headers=HTML)
    assert form.status_code == 200
    response = browser.post(
        "/signup",
        data={"username": "pageuser", "password": PASSWORD, "display_name": "Page User", "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/@pageuser"
    assert browser.get("/api/me").json()["username"] == "pageuser"


def test_form_without_a_valid_csrf_token_is_refused(app: Starlette) -> None:
    browser = TestClient(app, raise_server_exceptions=False)
    browser.get("/signup", headers=HTML)
    response = browser.post("/signup", data={"username": "forged1", "password": PASSWORD, "csrf_token": "0" * 64}, headers=HTML)
    assert response.status_code == 403
    assert "did not come from this site" in response.text
    assert browser.get("/api/users/forged1").status_code == 404


def test_refused_signup_form_keeps_the_input_and_names_the_problem(app: Starlette) -> None:
    browser = TestClient(app)
    token = csrf_of(browser.get("/signup", headers=HTML).text)
    response = browser.post("/signup", data={"username": "ab", "display_name": "Kept Name", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 422
    assert 'value="Kept Name"' in response.text
    assert "4 to 15 letters" in response.text


def test_login_page_signs_in_and_returns_to_next(app: Starlette) -> None:
    sign_up(app, "returner")
    browser = TestClient(app)
    token = csrf_of(browser.get("/login?next=/settings", headers=HTML).text)
    response = browser.post(
        "/login", data={"username": "returner", "password": PASSWORD, "csrf_token": token, "next": "/settings"}, follow_redirects=False
    )
    assert response.headers["location"] == "/settings"
    assert browser.get("/settings", headers=HTML).status_code == 200


def test_login_page_never_redirects_off_site(app: Starlette) -> None:
    sign_up(app, "offsite")
    browser = TestClient(app)
    token = csrf_of(browser.get("/login", headers=HTML).text)
    response = browser.post(
        "/login", data={"username": "offsite", "password": PASSWORD, "csrf_token": token, "next": "//evil.example"}, follow_redirects=False
    )
    assert response.headers["location"] == "/"


def test_settings_page_needs_sign_in(client: TestClient) -> None:
    response = client.get("/settings", headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/settings"


def test_settings_page_lists_sessions_and_tokens(alice: UserClient) -> None:
    alice.post("/api/auth/tokens", json={"name": "ci robot"})
    page = alice.get("/settings", headers=HTML).text
    assert "ci robot" in page
    assert "This browser" in page


def test_token_created_on_the_settings_page_is_shown_once(alice: UserClient) -> None:
    token = csrf_of(alice.get("/settings", headers=HTML).text)
    created = alice.post("/settings/tokens", data={"name": "page token", "csrf_token": token}).text
    secret = re.search(r'<code class="token">(ev_[^<]+)</code>', created)
    assert secret
    assert secret.group(1) not in alice.get("/settings", headers=HTML).text


def test_profile_page_shows_counts_and_kernel_actions(alice: UserClient, bob: UserClient) -> None:
    page = alice.get("/@BOB_B", headers=HTML)
    assert page.status_code == 200
    assert "Bob Builder" in page.text and "@bob_b" in page.text
    assert "Following" in page.text and "Followers" in page.text
    for label in ("Follow", "Add to contacts", "Block"):
        assert f">{label}</button>" in page.text


def test_follow_button_on_a_profile_follows(alice: UserClient, bob: UserClient) -> None:
    token = csrf_of(alice.get("/@bob_b", headers=HTML).text)
    alice.post("/@bob_b/follow", data={"csrf_token": token})
    page = alice.get("/@bob_b", headers=HTML).text
    assert ">Unfollow</button>" in page
    assert "<strong>1</strong> Followers" in page


def test_profile_actions_come_from_plugins(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", plugins={"enabled": [*BUNDLED_PLUGINS, "recorder"]})
    app = create_app(settings, plugins={"recorder": "tests.plugin_fixtures.recorder"})
    with TestClient(app):
        viewer = sign_up(app, "viewer")
        sign_up(app, "viewed")
        page = viewer.get("/@viewed", headers=HTML).text
    assert "Wave at viewed" in page
    assert 'href="/recorder/"' in page  # its navigation item


def test_plugin_scripts_and_stylesheets_reach_every_page_but_only_local_ones(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", plugins={"enabled": [*BUNDLED_PLUGINS, "recorder"]})
    app = create_app(settings, plugins={"recorder": "tests.plugin_fixtures.recorder"})
    with TestClient(app):
        viewer = sign_up(app, "viewer")
        for path in ("/", "/directory", "/no/such/page"):
            page = viewer.get(path, headers=HTML).text
            assert '<link rel="stylesheet" href="/static/plugins/recorder/recorder.css">' in page, path
            assert '<script src="/static/plugins/recorder/recorder.js" defer></script>' in page, path
            assert "elsewhere.example" not in page, path


def test_settings_page_shows_plugin_sections(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", plugins={"enabled": [*BUNDLED_PLUGINS, "recorder"]})
    app = create_app(settings, plugins={"recorder": "tests.plugin_fixtures.recorder"})
    with TestClient(app):
        page = sign_up(app, "viewer").get("/settings", headers=HTML).text
    assert '<section class="card" aria-label="Recorder settings">' in page
    assert "viewer" in page.split('aria-label="Recorder settings"', 1)[1]


def test_own_profile_shows_no_actions_but_edit(alice: UserClient) -> None:
    page = alice.get("/@alice", headers=HTML).text
    assert ">Follow</button>" not in page
    assert "Edit profile" in page


def test_unknown_page_is_a_404_inside_the_layout(client: TestClient) -> None:
    response = client.get("/no/such/page", headers=HTML)
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]
    assert 'class="topbar"' in response.text and "Page not found" in response.text


def test_unknown_profile_is_a_404_page(client: TestClient) -> None:
    response = client.get("/@nobody_home", headers=HTML)
    assert response.status_code == 404
    assert "No user @nobody_home." in response.text


def test_directory_page_renders_results_without_scripts(alice: UserClient, client: TestClient) -> None:
    page = client.get("/directory?q=ali", headers=HTML).text
    assert 'href="/@alice"' in page
    assert "/static/kernel/directory.js" in page


def test_every_asset_is_served_by_the_app(client: TestClient) -> None:
    page = client.get("/", headers=HTML).text
    assets = re.findall(r'(?:href|src)="([^"]+\.(?:css|js|svg))"', page)
    assert assets
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert client.get(asset).status_code == 200
    assert "http://" not in page and "https://" not in page


def test_layout_is_made_for_phones(client: TestClient) -> None:
    page = client.get("/", headers=HTML).text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page


def test_logout_form_ends_the_session(alice: UserClient) -> None:
    token = csrf_of(alice.get("/", headers=HTML).text)
    alice.post("/logout", data={"csrf_token": token})
    assert alice.get("/api/me").status_code == 401


def test_plugins_add_sections_to_profile_pages(tmp_path: Path) -> None:
    from tests.conftest import RECORDER, recorder_settings, running

    app = create_app(recorder_settings(tmp_path / "data"), plugins=RECORDER)
    with running(app):
        alice = sign_up(app, "alice")
        page = alice.get("/@alice", headers=HTML).text
    assert '<section class="profile-section" aria-label="Recordings">' in page
    assert "Nothing recorded by @alice yet." in page
