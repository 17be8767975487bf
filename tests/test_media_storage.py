"""Feed media and Spaces recordings on each storage backend: the local disk, the database and S3.

Every behaviour runs on each backend (``[media] storage``), on SQLite and on
PostgreSQL; S3 is moto's server started on loopback by these tests
(tests/s3_server.py). The deployments of several hosts are real `everything
serve` processes, each with its own data folder, sharing one PostgreSQL
database and the storage.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, insert, select
from starlette.applications import Starlette

from kernel import create_app
from kernel.media_storage.base import CHUNK
from kernel.storage.models import stored_file_chunks, stored_files, utcnow
from plugins.feed.models import media
from plugins.spaces.models import spaces
from plugins.spaces.service import SPACES
from tests import s3_server
from tests.conftest import POSTGRES_URL, UserClient, assert_error, make_settings, running, serve_env, serve_process, sign_up
from tests.media_samples import MP4, PNG
from tests.redis_kit import until
from tests.test_settings import everything
from tests.test_spaces_pages import write_silence


@dataclass
class Backend:
    """One ``[media] storage`` choice, and a way to count what it holds from outside the app."""

    name: str
    endpoint: str | None = None
    bucket: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        if self.name == "s3":
            assert self.endpoint is not None and self.bucket is not None
            return s3_server.media_env(self.endpoint, self.bucket)
        return {"EVERYTHING_MEDIA__STORAGE": self.name}

    def stored(self, app: Starlette) -> int:
        """Files and pieces of files held, whole or not: 0 means nothing was left behind."""
        kernel = app.state.kernel
        if self.name == "local":
            root = kernel.settings.data_dir / "media" / "feed"
            return sum(1 for path in root.rglob("*") if path.is_file()) if root.exists() else 0
        if self.name == "database":
            return int(kernel.db.read(lambda conn: conn.execute(select(func.count()).select_from(stored_files)).scalar_one()))
        assert self.endpoint is not None
        client = s3_server.client(self.endpoint)
        objects = client.list_objects_v2(Bucket=self.bucket).get("KeyCount", 0)
        return int(objects) + len(client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with s3_server.moto_server() as url:
        yield url


def make_backend(name: str, request: pytest.FixtureRequest) -> Backend:
    if name != "s3":
        return Backend(name, settings={"storage": name})
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = s3_server.new_bucket(endpoint)
    return Backend(name, endpoint, bucket, s3_server.media_settings(endpoint, bucket))


@pytest.fixture(params=["local", "database", "s3"])
def backend(request: pytest.FixtureRequest) -> Backend:
    return make_backend(request.param, request)


@pytest.fixture
def app(tmp_path: Path, database_url: str | None, backend: Backend) -> Iterator[Starlette]:
    application = create_app(make_settings(tmp_path / "data", database_url, media=backend.settings))
    with running(application):
        yield application


def upload_response(client: UserClient | httpx.Client, data: bytes) -> httpx.Response:
    return client.post("/api/feed/media", files={"file": ("file.bin", data, "application/octet-stream")})


def upload(client: UserClient | httpx.Client, data: bytes) -> dict[str, Any]:
    response = upload_response(client, data)
    assert response.status_code == 201, response.text
    return response.json()


# Through the feed's API, on every backend ------------------------------------------------------


def test_an_uploaded_image_is_served_back_whole_with_its_validators(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    item = upload(alice, PNG)
    served = alice.get(item["url"])
    assert served.status_code == 200 and served.content == PNG
    assert served.headers["content-type"] == "image/png" and served.headers["accept-ranges"] == "bytes"
    assert served.headers["etag"] and served.headers["last-modified"]
    assert served.headers["cache-control"] == "private, max-age=31536000, immutable"
    head = alice.head(item["url"])
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(PNG))


def test_a_video_is_served_in_any_byte_range(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    url, size = upload(alice, MP4)["url"], len(MP4)
    for wanted, start, end in [("bytes=0-99", 0, 100), ("bytes=100-", 100, size), ("bytes=-50", size - 50, size), (f"bytes=10-{size * 2}", 10, size)]:
        part = alice.get(url, headers={"Range": wanted})
        assert part.status_code == 206, wanted
        assert part.content == MP4[start:end], wanted
        assert part.headers["content-range"] == f"bytes {start}-{end - 1}/{size}"


def test_a_range_past_the_end_is_refused_with_the_size(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    url = upload(alice, MP4)["url"]
    refused = alice.get(url, headers={"Range": f"bytes={len(MP4)}-"})
    assert refused.status_code == 416 and refused.headers["content-range"] == f"bytes */{len(MP4)}"


def test_a_current_copy_is_answered_not_modified_and_a_stale_range_gets_the_whole_file(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    url = upload(alice, MP4)["url"]
    etag = alice.get(url).headers["etag"]
    assert alice.get(url, headers={"If-None-Match": etag}).status_code == 304
    stale = alice.get(url, headers={"Range": "bytes=0-9", "If-Range": '"another-version"'})
    assert stale.status_code == 200 and stale.content == MP4


def test_deleting_a_post_deletes_its_stored_files(app: Starlette, backend: Backend) -> None:
    alice = sign_up(app, "alice")
    item = upload(alice, PNG)
    post = alice.post("/api/feed/posts", json={"text": "brief", "media": [item["id"]]}).json()
    assert backend.stored(app) == 1
    assert alice.delete(f"/api/feed/posts/{post['id']}").status_code == 204
    assert backend.stored(app) == 0
    assert alice.get(item["url"]).status_code == 404


def test_a_refused_upload_leaves_nothing_stored_anywhere(app: Starlette, backend: Backend) -> None:
    alice = sign_up(app, "alice")
    assert_error(alice.post("/api/feed/media", files={"file": ("cat.png", b"<svg onload=alert(1)>", "image/png")}), 415, "unsupported_media_type")
    assert_error(alice.post("/api/feed/media", files={"file": ("broken.png", PNG[:20] + b"\0" * 50, "image/png")}), 422, "unsupported_media")
    assert backend.stored(app) == 0
    scratch = app.state.kernel.media_storage("feed").scratch()
    assert list(scratch.iterdir()) == []


def test_an_upload_the_storage_cannot_take_is_refused_as_unavailable_and_leaves_no_attachment(
    tmp_path: Path, database_url: str | None, request: pytest.FixtureRequest
) -> None:
    backend = make_backend("s3", request)
    application = create_app(make_settings(tmp_path / "data", database_url, media=backend.settings))
    with running(application):
        alice = sign_up(application, "alice")
        s3_server.client(backend.endpoint).delete_bucket(Bucket=backend.bucket)  # the bucket is gone: every put fails
        assert_error(upload_response(alice, PNG), 503, "storage_unavailable")
        count = select(func.count()).select_from(media)
        assert application.state.kernel.db.read(lambda conn: conn.execute(count).scalar_one()) == 0


# The storage interface itself, on every backend ------------------------------------------------


def test_a_file_of_several_chunks_reads_back_in_any_range_and_is_replaced_whole(app: Starlette, tmp_path: Path) -> None:
    storage = app.state.kernel.media_storage("tests")
    data = os.urandom(2 * CHUNK + CHUNK // 2)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    first = storage.put("ab/big.bin", source, "application/octet-stream")
    assert (first.size, storage.stat("ab/big.bin").size) == (len(data), len(data))
    for start, end in [(0, CHUNK + 10), (CHUNK - 5, 2 * CHUNK + 5), (len(data) - 3, len(data)), (7, 7)]:
        assert b"".join(storage.read("ab/big.bin", start, end)) == data[start:end]
    assert storage.read_bytes("ab/big.bin") == data
    source.write_bytes(b"smaller now")
    second = storage.put("ab/big.bin", source, "text/plain")
    assert storage.read_bytes("ab/big.bin") == b"smaller now" and second.etag != first.etag
    storage.delete("ab/big.bin")
    storage.delete("ab/big.bin")  # gone already: no error
    assert storage.stat("ab/big.bin") is None and not storage.exists("ab/big.bin")
    with pytest.raises(FileNotFoundError):
        storage.read_bytes("ab/big.bin")


def test_a_read_of_a_version_since_replaced_finds_no_file(app: Starlette, tmp_path: Path) -> None:
    """What the server answers with a lookup's length and ETag, it reads only from that version."""
    storage = app.state.kernel.media_storage("tests")
    source = tmp_path / "file.bin"
    source.write_bytes(b"the first version")
    first = storage.put("ab/file.bin", source, "application/octet-stream")
    source.write_bytes(b"the second, longer version")
    second = storage.put("ab/file.bin", source, "application/octet-stream")
    with pytest.raises(FileNotFoundError):
        b"".join(storage.read("ab/file.bin", 0, first.size, etag=first.etag))
    assert b"".join(storage.read("ab/file.bin", 4, 10, etag=second.etag)) == b"second"


@pytest.mark.parametrize("key", ["../secret", "/etc/passwd", "a//b", ".hidden", "a/../b", ""])
def test_a_key_never_leaves_its_plugin_s_storage(app: Starlette, key: str) -> None:
    storage = app.state.kernel.media_storage("tests")
    with pytest.raises(ValueError, match="not a storage key"):
        storage.stat(key)


def test_an_upload_a_crash_left_unfinished_is_swept(app: Starlette, backend: Backend) -> None:
    kernel = app.state.kernel
    storage = kernel.media_storage("tests")
    if backend.name == "database":
        # What a process killed mid-upload leaves: a file row that never got its key, and some of its chunks.
        def crashed(conn: Any) -> None:
            file_id = conn.execute(insert(stored_files).values(key=None, content_type="video/mp4", size=0, created_at=utcnow() - timedelta(hours=2)))
            conn.execute(insert(stored_file_chunks).values(file_id=file_id.inserted_primary_key[0], seq=0, data=b"half"))

        kernel.db.write(crashed)
    elif backend.name == "s3":
        s3_server.client(backend.endpoint).create_multipart_upload(Bucket=backend.bucket, Key="tests/ab/half.mp4")
    else:
        (storage.scratch() / "upload-half").write_bytes(b"half")
        os.utime(storage.scratch() / "upload-half", (0, 0))
    assert storage.sweep(timedelta(hours=1) if backend.name != "s3" else timedelta(0)) == 1
    assert storage.sweep(timedelta(0)) == 0
    if backend.name == "database":
        assert kernel.db.read(lambda conn: conn.execute(select(func.count()).select_from(stored_file_chunks)).scalar_one()) == 0


def test_a_scratch_file_a_kill_left_behind_is_swept_on_every_backend(app: Starlette) -> None:
    storage = app.state.kernel.media_storage("tests")
    (storage.scratch() / "upload-killed").write_bytes(b"half")
    os.utime(storage.scratch() / "upload-killed", (0, 0))
    (storage.scratch() / "upload-in-progress").write_bytes(b"still coming")
    assert storage.sweep(timedelta(hours=1)) == 1
    assert [path.name for path in storage.scratch().iterdir()] == ["upload-in-progress"]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"EVERYTHING_MEDIA__STORAGE": "disk"}, "media.storage"),
        ({"EVERYTHING_MEDIA__STORAGE": "s3"}, "media.s3.bucket"),
        ({"EVERYTHING_MEDIA__S3__ENDPOINT_URL": "localhost:9000"}, "media.s3.endpoint_url"),
    ],
    ids=["unknown-backend", "s3-without-bucket", "endpoint-without-scheme"],
)
def test_bad_media_settings_stop_with_one_line_naming_the_key(env: dict[str, str], named: str) -> None:
    result = everything("config", "check", env=env)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and named in result.stderr


# Recordings of Spaces ----------------------------------------------------------------------


def test_a_take_is_listed_once_published_and_listing_stores_nothing(app: Starlette) -> None:
    alice = sign_up(app, "alice")
    space = alice.post("/api/spaces", json={"title": "Taped"}).json()
    library = SPACES.of(app.state.kernel).recordings
    take = library.new_path(space["id"], datetime(2026, 11, 21, 15, 2, 0))
    write_silence(take, seconds=2)
    assert alice.get(f"/api/spaces/{space['id']}").json()["recordings"] == []
    assert library.list(space["id"]) == [] and take.is_file()
    assert library.publish(space["id"]) == 1
    [listed] = alice.get(f"/api/spaces/{space['id']}").json()["recordings"]
    assert listed["name"] == take.name and listed["duration_seconds"] == 2.0


def test_a_take_left_on_disk_at_a_stop_is_published_after_the_next_start(tmp_path: Path, database_url: str | None, backend: Backend) -> None:
    settings = make_settings(tmp_path / "data", database_url, media=backend.settings)
    before = create_app(settings)
    with running(before):
        space = sign_up(before, "alice").post("/api/spaces", json={"title": "Taped"}).json()
        take = SPACES.of(before.state.kernel).recordings.new_path(space["id"], datetime(2026, 11, 21, 15, 2, 0))
    write_silence(take, seconds=2)  # finished as the process stopped, before it was published
    after = create_app(settings)
    with running(after):
        library = SPACES.of(after.state.kernel).recordings
        until(lambda: library.list(space["id"]), "the leftover take is published")
        assert [listed.name for listed in library.list(space["id"])] == [take.name]


def test_a_take_whose_row_cannot_be_written_stays_on_disk(app: Starlette, backend: Backend) -> None:
    alice = sign_up(app, "alice")
    space = alice.post("/api/spaces", json={"title": "Taped"}).json()
    library = SPACES.of(app.state.kernel).recordings
    take = library.new_path(space["id"], datetime(2026, 11, 21, 15, 2, 0))
    write_silence(take, seconds=2)
    # The Space is gone (a host's account deleted meanwhile): its take's row can never be written.
    app.state.kernel.db.write(lambda conn: conn.execute(delete(spaces).where(spaces.c.id == space["id"])))
    assert library.publish(space["id"]) == 0
    assert take.is_file()


# Across hosts: each process its own data folder, one PostgreSQL database ---------------------------

needs_postgres = pytest.mark.skipif(POSTGRES_URL is None, reason="hosts share PostgreSQL: set EVERYTHING_TEST_DATABASE_URL")


def hosts_env(database_url: str, backend: Backend) -> dict[str, str]:
    return {**serve_env(database_url), "EVERYTHING_SECRET_KEY": secrets.token_urlsafe(32), **backend.env()}


@needs_postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("shared", ["database", "s3"])
def test_media_uploaded_through_one_host_is_served_by_another(tmp_path: Path, database_url: str, shared: str, request: pytest.FixtureRequest) -> None:
    backend = make_backend(shared, request)
    env = hosts_env(database_url, backend)
    first, second = tmp_path / "host-a", tmp_path / "host-b"
    first.mkdir(), second.mkdir()
    upgraded = subprocess.run([sys.executable, "-m", "kernel.cli", "db", "upgrade"], cwd=first, env=env, capture_output=True, text=True)
    assert upgraded.returncode == 0, upgraded.stderr
    with ExitStack() as hosts:
        url_a, _ = hosts.enter_context(serve_process(first, env))
        url_b, _ = hosts.enter_context(serve_process(second, env))
        with httpx.Client(base_url=url_a, trust_env=False) as alice:
            signed = alice.post("/api/auth/signup", json={"username": "alice", "password": "correct horse battery"})
            alice.headers["X-CSRF-Token"] = signed.headers["X-CSRF-Token"]
            item = upload(alice, MP4)
            assert alice.post("/api/feed/posts", json={"text": "a clip", "media": [item["id"]]}).status_code == 201
        with httpx.Client(base_url=url_b, trust_env=False) as anyone:
            whole = anyone.get(item["url"])
            assert whole.status_code == 200 and whole.content == MP4
            part = anyone.get(item["url"], headers={"Range": "bytes=100-199"})
            assert part.status_code == 206 and part.content == MP4[100:200]
    assert not list((second / "everything-data").glob("media/**/*.mp4"))  # served from the shared store, not copied to B's disk


@needs_postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_media_on_the_local_disk_is_not_found_through_another_host(tmp_path: Path, database_url: str, request: pytest.FixtureRequest) -> None:
    """Why the other backends exist: each host's disk is its own."""
    env = hosts_env(database_url, make_backend("local", request))
    first, second = tmp_path / "host-a", tmp_path / "host-b"
    first.mkdir(), second.mkdir()
    assert subprocess.run([sys.executable, "-m", "kernel.cli", "db", "upgrade"], cwd=first, env=env, capture_output=True).returncode == 0
    with serve_process(first, env) as (url_a, _), serve_process(second, env) as (url_b, _):
        with httpx.Client(base_url=url_a, trust_env=False) as alice:
            signed = alice.post("/api/auth/signup", json={"username": "alice", "password": "correct horse battery"})
            alice.headers["X-CSRF-Token"] = signed.headers["X-CSRF-Token"]
            item = upload(alice, PNG)
            alice.post("/api/feed/posts", json={"text": "a picture", "media": [item["id"]]})
            assert alice.get(item["url"]).status_code == 200
        assert httpx.get(url_b + item["url"], trust_env=False).status_code == 404


@needs_postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("shared", ["database", "s3"])
def test_a_take_recorded_on_one_host_is_listed_and_played_through_another(
    tmp_path: Path, database_url: str, shared: str, request: pytest.FixtureRequest
) -> None:
    backend = make_backend(shared, request)
    secret = secrets.token_urlsafe(32)
    apps = [create_app(make_settings(tmp_path / name, database_url, media=backend.settings, secret_key=secret)) for name in ("host-a", "host-b")]
    with running(apps[0]), running(apps[1]):
        alice, bob = sign_up(apps[0], "alice"), sign_up(apps[1], "bob_b")
        space = alice.post("/api/spaces", json={"title": "Taped"}).json()
        assert alice.post(f"/api/spaces/{space['id']}/end").status_code == 200
        # A take as host A's mixer leaves it: a whole Ogg/Opus file on A's disk.
        take = SPACES.of(apps[0].state.kernel).recordings.new_path(space["id"], datetime(2026, 11, 21, 15, 2, 0))
        write_silence(take, seconds=3)
        sound = take.read_bytes()
        # What A's recorder does when it finishes a take; B lists it with no help from A.
        apps[0].state.test_portal.call(SPACES.of(apps[0].state.kernel).on_recorded, space["id"], take)
        until(lambda: bob.get(f"/api/spaces/{space['id']}").json()["recordings"], "host B lists the take")
        assert not take.exists()  # stored in the shared storage, so A's disk no longer holds it
        [on_a] = alice.get(f"/api/spaces/{space['id']}").json()["recordings"]
        [on_b] = bob.get(f"/api/spaces/{space['id']}").json()["recordings"]
        assert on_b == on_a and on_b["duration_seconds"] == 3.0
        played = bob.get(on_b["url"])
        assert played.status_code == 200 and played.content == sound and played.headers["content-type"] == "audio/ogg"
        part = bob.get(on_b["url"], headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and part.content == sound[:100]
