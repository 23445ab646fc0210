"""``AUTHENTICATE_HTTP`` (``channels_jwt.httpauth``): HTTP requests through the middleware."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from channels.testing import HttpCommunicator
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured

from channels_jwt import JWTAuthMiddleware
from tests.harness import Configure, crashing_resolver, expired_token_for, token_for

User = get_user_model()
ON = {"AUTHENTICATE_HTTP": True}


@dataclass
class HttpApp:
    """Records the scope it is given and answers 200."""

    scopes: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def request(app: Any, *headers: tuple[bytes, bytes]) -> dict[str, Any]:
    communicator = HttpCommunicator(JWTAuthMiddleware(app), "GET", "/graphql/", headers=headers)
    response: dict[str, Any] = await communicator.get_response(timeout=5)
    return response


def bearer(token: str) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {token}".encode())


def refusal(response: dict[str, Any]) -> tuple[int, Any, dict[bytes, bytes]]:
    return response["status"], json.loads(response["body"]), dict(response["headers"])


async def test_http_passes_untouched_by_default(configure: Configure) -> None:
    app = HttpApp()

    response = await request(app, bearer("not-a-token"))

    assert response["status"] == 200
    assert "user" not in app.scopes[0]
    assert bearer("not-a-token") in app.scopes[0]["headers"]


async def test_a_valid_bearer_token_authenticates_the_request(configure: Configure) -> None:
    configure(**ON)
    app = HttpApp()
    token = token_for(7)

    response = await request(app, bearer(token), (b"accept", b"application/json"))

    scope = app.scopes[0]
    assert response["status"] == 200
    assert scope["user"].pk == 7
    assert scope["jwt"].source == "header"
    assert scope["headers"] == [(b"accept", b"application/json")]  # the token is gone
    assert token not in repr(scope)


@pytest.mark.parametrize(
    "headers",
    [(), ((b"authorization", b"Bearer "),), ((b"authorization", b"Basic dXNlcjpwYXNz"),)],
    ids=["none", "empty-bearer", "basic"],
)
async def test_a_request_without_a_token_is_anonymous(
    configure: Configure, headers: tuple[tuple[bytes, bytes], ...]
) -> None:
    configure(**ON)
    app = HttpApp()

    response = await request(app, *headers)

    assert response["status"] == 200
    assert not app.scopes[0]["user"].is_authenticated
    assert app.scopes[0]["jwt"] is None


@pytest.mark.parametrize(
    ("headers", "status", "body", "challenge"),
    [
        (
            lambda: (bearer("x.y.z"),),
            401,
            {"code": 4400, "reason": "token_malformed"},
            b'Bearer error="invalid_token"',
        ),
        (
            lambda: (bearer(token_for(1, key="another-key-" * 4)),),
            401,
            {"code": 4401, "reason": "token_invalid"},
            b'Bearer error="invalid_token"',
        ),
        (
            lambda: (bearer(expired_token_for(1)),),
            401,
            {"code": 4440, "reason": "token_expired"},
            b'Bearer error="invalid_token"',
        ),
        (
            lambda: (bearer(token_for(1)), bearer(token_for(2))),
            401,
            {"code": 4400, "reason": "token_malformed"},
            b'Bearer error="invalid_token"',
        ),
    ],
    ids=["malformed", "bad-signature", "expired", "two-tokens"],
)
async def test_a_bad_token_is_refused_never_anonymous(
    configure: Configure, headers: Any, status: int, body: Any, challenge: bytes
) -> None:
    configure(**ON)
    app = HttpApp()

    code, content, sent = refusal(await request(app, *headers()))

    assert (code, content) == (status, body)
    assert sent[b"www-authenticate"] == challenge
    assert sent[b"content-type"] == b"application/json"
    assert not app.scopes


async def test_an_inactive_user_is_403(configure: Configure, transactional_db: None) -> None:
    configure(**ON, USER_RESOLVER="channels_jwt.users.database_user")
    user = await User.objects.acreate(username="dormant-http", is_active=False)

    code, content, sent = refusal(await request(HttpApp(), bearer(token_for(user.pk))))

    assert (code, content) == (403, {"code": 4403, "reason": "user_rejected"})
    assert b"www-authenticate" not in sent


async def test_a_check_that_cannot_run_is_503(configure: Configure) -> None:
    configure(**ON, USER_RESOLVER=crashing_resolver)

    code, content, _ = refusal(await request(HttpApp(), bearer(token_for(1))))

    assert (code, content) == (503, {"code": 4503, "reason": "auth_unavailable"})


async def misconfigured_resolver(claims: Any, scope: Any) -> Any:
    raise ImproperlyConfigured("USER_ID_FIELD names no field")


async def test_a_resolver_that_finds_the_project_misconfigured_is_503(
    configure: Configure, caplog: pytest.LogCaptureFixture
) -> None:
    configure(**ON, USER_RESOLVER=misconfigured_resolver)

    code, content, _ = refusal(await request(HttpApp(), bearer(token_for(1))))

    assert (code, content) == (503, {"code": 4503, "reason": "auth_unavailable"})
    assert "HTTP authentication unavailable: user lookup failed (ImproperlyConfigured)" in (
        caplog.messages
    )


async def test_close_code_overrides_apply_to_the_body(configure: Configure) -> None:
    configure(**ON, CLOSE_CODES={"token_expired": 4001})

    _, content, _ = refusal(await request(HttpApp(), bearer(expired_token_for(1))))

    assert content == {"code": 4001, "reason": "token_expired"}


async def test_a_misconfigured_middleware_answers_503(configure: Configure) -> None:
    app = HttpApp()
    middleware = JWTAuthMiddleware(app, settings={**ON, "ALGORITHMS": ["none"]})
    communicator = HttpCommunicator(middleware, "GET", "/", headers=[bearer(token_for(1))])

    response = await communicator.get_response(timeout=5)

    assert response["status"] == 503
    assert json.loads(response["body"]) == {"code": 4503, "reason": "auth_unavailable"}
    assert not app.scopes
