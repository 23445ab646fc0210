"""The page and its JSON API: log in, refresh the access token, log out.

The session (an HttpOnly cookie) is the long-lived credential; the access token is short-lived
and only ever used to open WebSockets. ``/api/refresh`` trades the session for a new token, so
a page whose socket closed with 4440 gets a token without asking for the password again, and
``/api/session`` tells a page that has just loaded whether there is a session to resume. Every
POST is CSRF-protected (Django's middleware): a foreign page cannot mint tokens with the
victim's session cookie.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, login, logout
from django.contrib.staticfiles import finders
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from channels_jwt import disconnect_user, issue_token

# The page's own scripts and styles only, and sockets to this site only ('self' covers ws:
# and wss: to the same host in CSP Level 3 browsers).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def _error(status: int, error: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": error, "detail": detail}, status=status)


def _token(user: Any) -> dict[str, Any]:
    lifetime = settings.ACCESS_TOKEN_SECONDS
    return {
        "access": issue_token(user, lifetime=lifetime),
        "expires_in": lifetime,
        "username": user.get_username(),
    }


@require_GET
@never_cache
@ensure_csrf_cookie
def index(request: HttpRequest) -> HttpResponse:
    """The single-page chat client (a static file), with the CSRF cookie set."""
    return _static_page("chat/index.html")


def _static_page(name: str) -> HttpResponse:
    page = finders.find(name)
    if not isinstance(page, str):
        raise Http404(f"{name} is missing from the static files")
    with open(page, encoding="utf-8") as handle:
        response = HttpResponse(handle.read(), content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@require_GET
@never_cache
@ensure_csrf_cookie
def csrf(request: HttpRequest) -> JsonResponse:
    """Set the CSRF cookie (for clients that never load the page) and return the token."""
    return JsonResponse({"csrf_token": get_token(request)})


@require_POST
def login_view(request: HttpRequest) -> JsonResponse:
    """``{"username", "password"}`` → a session cookie and ``{"access", "expires_in", ...}``."""
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return _error(400, "bad_request", "Send a JSON object with username and password.")
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        return _error(400, "bad_request", "username and password must be strings.")
    # Inactive users fail here too, with the same answer (ModelBackend refuses them).
    user = authenticate(request, username=username, password=password)
    if user is None:
        return _error(401, "invalid_credentials", "Wrong username or password.")
    login(request, user)
    return JsonResponse(_token(user))


@require_POST
def session_view(request: HttpRequest) -> JsonResponse:
    """The page's first question: ``{"authenticated": false}``, or ``{"authenticated": true}``
    with a token as ``/api/refresh`` gives it.

    Nobody logged in is the normal answer on a first visit, not an error: a 401 here would be
    logged by the browser as a failed request on every fresh load.
    """
    user = request.user
    if not user.is_authenticated or not user.is_active:
        return JsonResponse({"authenticated": False})
    return JsonResponse({"authenticated": True, **_token(user)})


@require_POST
def refresh_view(request: HttpRequest) -> JsonResponse:
    """A new access token for the session's user, while that user is still active."""
    user = request.user
    # AuthenticationMiddleware already turns an inactive user's session into AnonymousUser;
    # the is_active test keeps this correct with backends that allow inactive users.
    if not user.is_authenticated or not user.is_active:
        return _error(401, "not_logged_in", "Log in again.")
    return JsonResponse(_token(user))


@require_POST
def logout_view(request: HttpRequest) -> JsonResponse:
    """End the session and close the user's open sockets (4441), chat and GraphQL alike.

    Every tab of this browser shares the session, so every tab is logged out. The demo closes
    the user's sockets on other devices too; a site with a session per device would revoke
    only the tokens that session issued. An access token already issued still opens a socket
    until it expires, as it would call any other API.
    """
    user = request.user
    logout(request)
    if user.is_authenticated:
        disconnect_user(user)
    return JsonResponse({"logged_out": True})


@require_GET
@never_cache
@ensure_csrf_cookie
def feed(request: HttpRequest) -> HttpResponse:
    """The GraphQL feed page (a static file): a room's messages through graphql-ws."""
    return _static_page("chat/feed.html")


def csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    """JSON instead of Django's HTML page when a POST lacks a valid CSRF token."""
    return _error(403, "csrf_failed", f"CSRF check failed: {reason}")
