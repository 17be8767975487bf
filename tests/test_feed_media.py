"""Attachments: real images and videos, their type read from their content, stored, served in ranges, attached to posts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from kernel import create_app
from tests.conftest import UserClient, assert_error, make_operator, make_settings, running, sign_up
from tests.media_samples import GIF, JPEG, MP4, PNG, WEBM, WEBP


def upload(client: UserClient, data: bytes, name: str = "file.bin", content_type: str = "application/octet-stream") -> Any:
    return client.post("/api/feed/media", files={"file": (name, data, content_type)})


def uploaded(client: UserClient, data: bytes) -> dict[str, Any]:
    response = upload(client, data)
    assert response.status_code == 201, response.text
    return response.json()


def stored_files(app: Starlette) -> list[Path]:
    root = app.state.kernel.settings.data_dir / "media" / "feed"
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


@pytest.fixture
def small_limits(tmp_path: Path) -> Iterator[Starlette]:
    """Images up to 2 KB; videos free up to half a second."""
    settings = make_settings(tmp_path / "data", plugins={"feed": {"max_image_bytes": 2000, "free_video_seconds": 0.5}})
    app = create_app(settings)
    with running(app):
        yield app


@pytest.mark.parametrize(("data", "mime"), [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp")])
def test_images_are_recognised_by_content_and_measured(app: Starlette, data: bytes, mime: str) -> None:
    alice = sign_up(app, "alice")
    item = uploaded(alice, data)
    assert (item["kind"], item["mime"], item["width"], item["height"], item["size"]) == ("image", mime, 40, 30, len(data))
    served = alice.get(item["url"])
    assert served.status_code == 200 and served.content == data
    assert served.headers["content-type"] == mime and served.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(("data", "mime"), [(MP4, "video/mp4"), (WEBM, "video/webm")])
def test_videos_know_their_length_and_are_served_in_ranges(app: Starlette, data: bytes, mime: str) -> None:
    alice = sign_up(app, "alice")
    item = uploaded(alice, data)
    assert item["kind"] == "video" and item["mime"] == mime and (item["width"], item["height"]) == (64, 48)
    assert 0.8 <= item["duration"] <= 1.2
    part = alice.get(item["url"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == data[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(data)}"


def test_a_file_that_lies_about_its_type_is_refused_and_nothing_stays(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    assert_error(upload(alice, b"<svg onload=alert(1)>", "cat.png", "image/png"), 415, "unsupported_media_type")
    assert_error(upload(alice, PNG[:20] + b"\x00" * 50, "broken.png", "image/png"), 422, "unsupported_media")
    assert stored_files(app) == []


def test_limits_on_size_and_length(small_limits: Starlette) -> None:
    alice = sign_up(small_limits, "alice")
    assert_error(upload(alice, JPEG + b"\x00" * 2000), 413, "payload_too_large")
    error = assert_error(upload(alice, MP4), 402, "premium_required")
    assert error["feature"] == "feed.longvideo"
    assert stored_files(small_limits) == []
    make_operator(small_limits, "oscar").post("/api/admin/users/alice/grants", json={"plan": "premium"})
    assert uploaded(alice, MP4)["kind"] == "video"


def test_uploads_go_as_multipart(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    assert_error(alice.post("/api/feed/media", content=PNG, headers={"content-type": "image/png"}), 415, "unsupported_media_type")
    assert_error(alice.post("/api/feed/media", files={"other": ("x.png", PNG, "image/png")}), 422, "validation_error")


def test_attachments_go_into_a_post_and_come_out_with_it(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    first, second = uploaded(alice, PNG), uploaded(alice, JPEG)
    post = alice.post("/api/feed/posts", json={"text": "two pictures", "media": [first["id"], second["id"]]}).json()
    assert [item["id"] for item in post["media"]] == [first["id"], second["id"]]
    assert sign_up(app, "bob_b").get(first["url"]).status_code == 200


def test_an_upload_not_yet_posted_is_its_owner_s_alone(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    item = uploaded(alice, PNG)
    assert sign_up(app, "bob_b").get(item["url"]).status_code == 404


@pytest.mark.parametrize(
    ("how", "code"),
    [("someone_else_s", "unknown_media"), ("twice", "validation_error"), ("video_and_image", "validation_error"), ("used", "unknown_media")],
)
def test_bad_attachments_are_refused_and_leave_no_post(app: Starlette, how: str, code: str) -> None:
    alice = sign_up(app, "alice")
    picture = uploaded(alice, PNG)
    if how == "someone_else_s":
        ids = [uploaded(sign_up(app, "bob_b"), PNG)["id"]]
    elif how == "twice":
        ids = [picture["id"], picture["id"]]
    elif how == "video_and_image":
        ids = [picture["id"], uploaded(alice, WEBM)["id"]]
    else:
        alice.post("/api/feed/posts", json={"text": "first", "media": [picture["id"]]})
        ids = [picture["id"]]
    assert_error(alice.post("/api/feed/posts", json={"text": "again", "media": ids}), 422, code)
    assert [post["text"] for post in alice.get("/api/feed/users/alice").json()["results"]] == (["first"] if how == "used" else [])


def test_a_post_that_fails_leaves_its_uploads_free_to_use(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    picture = uploaded(alice, PNG)
    assert_error(alice.post("/api/feed/posts", json={"text": "oops", "reply_to": 999, "media": [picture["id"]]}), 422, "unknown_post")
    assert alice.post("/api/feed/posts", json={"text": "now", "media": [picture["id"]]}).status_code == 201


def test_deleting_a_post_deletes_its_files(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    picture = uploaded(alice, PNG)
    post = alice.post("/api/feed/posts", json={"text": "brief", "media": [picture["id"]]}).json()
    assert len(stored_files(app)) == 1
    alice.delete(f"/api/feed/posts/{post['id']}")
    assert stored_files(app) == []
    assert alice.get(picture["url"]).status_code == 404
