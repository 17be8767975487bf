"""Bad input answers a 4xx in the error shape: never a 500, never a stack trace."""

from __future__ import annotations

import base64
import json

import pytest
from starlette.testclient import TestClient

from tests.conftest import UserClient, assert_error


def test_malformed_json_is_400(client: TestClient) -> None:
    response = client.post("/api/auth/signup", content=b"{not json", headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_json")


def test_json_that_is_not_an_object_is_422(client: TestClient) -> None:
    assert_error(client.post("/api/auth/signup", json=["alice", "pw"]), 422, "validation_error")


def test_wrong_type_names_the_field(client: TestClient) -> None:
    error = assert_error(client.post("/api/auth/signup", json={"username": 12345, "password": "long enough"}), 422, "validation_error")
    assert error["field"] == "username"


def test_unknown_field_is_refused_naming_it(client: TestClient) -> None:
    body = {"username": "extra_field", "password": "long enough", "phone": "+15550100"}
    error = assert_error(client.post("/api/auth/signup", json=body), 422, "validation_error")
    assert error["field"] == "phone"


def test_form_encoded_body_to_a_json_endpoint_is_415(client: TestClient) -> None:
    response = client.post("/api/auth/signup", data={"username": "formuser", "password": "long enough"})
    assert_error(response, 415, "unsupported_media_type")


def test_oversized_body_is_413(client: TestClient) -> None:
    response = client.post("/api/auth/signup", content=b"x" * (1024 * 1024 + 1), headers={"content-type": "application/json"})
    assert_error(response, 413, "payload_too_large")


def test_oversized_streamed_body_without_length_is_413(client: TestClient) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(300):
            yield b"x" * 4096

    response = client.post("/api/auth/signup", content=chunks(), headers={"content-type": "application/json"})
    assert_error(response, 413, "payload_too_large")


def test_unknown_api_route_is_404_json(client: TestClient) -> None:
    assert_error(client.get("/api/does/not/exist"), 404, "not_found")


def test_wrong_method_is_405_json(client: TestClient) -> None:
    assert_error(client.delete("/api/directory"), 405, "method_not_allowed")


def test_non_numeric_token_id_is_404(alice: UserClient) -> None:
    assert_error(alice.delete("/api/auth/tokens/abc"), 404, "not_found")


@pytest.mark.parametrize("limit", ["0", "-1", "ten", "1.5"])
def test_bad_limit_is_422(client: TestClient, limit: str) -> None:
    error = assert_error(client.get("/api/directory", params={"q": "a", "limit": limit}), 422, "validation_error")
    assert error["field"] == "limit"


def test_overlong_query_is_422(client: TestClient) -> None:
    error = assert_error(client.get("/api/directory", params={"q": "a" * 51}), 422, "validation_error")
    assert error["field"] == "q"


def test_huge_password_is_refused_without_hashing(client: TestClient) -> None:
    error = assert_error(client.post("/api/auth/signup", json={"username": "bigpass", "password": "p" * 5000}), 422, "validation_error")
    assert error["field"] == "password"


@pytest.mark.parametrize(
    "parts",
    [["a", "x", "y"], [None, None, None], ["a", [1], {}], ["a", 1, 10**30], ["a", 0]],
)
def test_forged_directory_cursors_are_422(client: TestClient, parts: list[object]) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps(parts).encode()).decode()
    assert_error(client.get("/api/directory", params={"q": "a", "cursor": cursor}), 422, "invalid_cursor")


@pytest.mark.parametrize("parts", [["2020-01-01T00:00:00", {"a": 1}], ["2020-01-01T00:00:00", 10**30], [None, 1], ["not a time", 1]])
def test_forged_follower_cursors_are_422(alice: UserClient, client: TestClient, parts: list[object]) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps(parts).encode()).decode()
    assert_error(client.get("/api/users/alice/followers", params={"cursor": cursor}), 422, "invalid_cursor")


def test_deeply_nested_json_is_400(client: TestClient) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    assert_error(client.post("/api/auth/signup", content=body, headers={"content-type": "application/json"}), 400, "invalid_json")


def test_directory_query_with_a_nul_is_422(client: TestClient) -> None:
    assert assert_error(client.get("/api/directory", params={"q": "a\u0000"}), 422, "validation_error")["field"] == "q"


def test_html_405_keeps_the_allow_header(client: TestClient) -> None:
    response = client.put("/directory", headers={"accept": "text/html"})
    assert response.status_code == 405
    assert "GET" in response.headers["allow"]
