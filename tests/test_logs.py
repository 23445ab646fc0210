"""Unit tests for ``channels_jwt.logs.RedactTokens``: tokens never reach a log line."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from uvicorn.logging import AccessFormatter

from channels_jwt.logs import MASK, MAX_LOGGED_PATH, RedactTokens, loggable_path
from tests.harness import claims_for, hs_token

JWT = hs_token(claims_for())
ROOT = Path(__file__).resolve().parent.parent


def record(
    msg: Any, args: Any = (), name: str = "uvicorn.error", exc_info: Any = None
) -> logging.LogRecord:
    """A log record as a logger would build it."""
    return logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, exc_info)


def test_mask_text() -> None:
    assert MASK == "[redacted]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("/ws/?token=abc", "/ws/?token=[redacted]", id="only-param"),
        pytest.param("/ws/?a=1&token=abc&b=2", "/ws/?a=1&token=[redacted]&b=2", id="middle"),
        pytest.param("token=abc", "token=[redacted]", id="start-of-text"),
        pytest.param(
            "GET /ws/?token=abc HTTP/1.1", "GET /ws/?token=[redacted] HTTP/1.1", id="space"
        ),
        pytest.param("'/ws/?token=abc'", "'/ws/?token=[redacted]'", id="single-quote"),
        pytest.param('"/ws/?token=abc"', '"/ws/?token=[redacted]"', id="double-quote"),
        pytest.param("/ws/?token=abc#frag", "/ws/?token=[redacted]#frag", id="fragment"),
        pytest.param("?token=a%2Eb%2Ec", "?token=[redacted]", id="percent-encoded-value"),
        pytest.param("?token=a&token=b", "?token=[redacted]&token=[redacted]", id="repeated"),
        pytest.param("?token=", "?token=[redacted]", id="empty-value"),
        pytest.param("a;token=abc", "a;token=[redacted]", id="after-semicolon"),
    ],
)
def test_token_param_value_is_masked(text: str, expected: str) -> None:
    assert RedactTokens(param="token").redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("/ws/?xtoken=abc", id="xtoken"),
        pytest.param("/ws/?my_token=abc", id="underscore-prefix"),
        pytest.param("/ws/?csrf-token=abc", id="dash-prefix"),
        pytest.param("/ws/?a.token=abc", id="dot-prefix"),
        pytest.param("/ws/?tokens=abc", id="longer-name"),
        pytest.param("/ws/?token_id=abc", id="suffix"),
        pytest.param("/ws/?room=token", id="value-named-token"),
    ],
)
def test_other_parameters_are_not_touched(text: str) -> None:
    assert RedactTokens(param="token").redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(f"Bearer {JWT}", "Bearer [redacted]", id="bearer"),
        pytest.param(f"/ws/?jwt={JWT}&a=1", "/ws/?jwt=[redacted]&a=1", id="other-param"),
        pytest.param(
            f"protocols=['access_token', '{JWT}']",
            "protocols=['access_token', '[redacted]']",
            id="list-repr",
        ),
        pytest.param(f"{JWT} and {JWT}", "[redacted] and [redacted]", id="twice"),
        pytest.param("eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", "[redacted]", id="unsecured"),
    ],
)
def test_jwt_shaped_text_is_masked(text: str, expected: str) -> None:
    assert RedactTokens(param="token").redact(text) == expected


def test_text_without_tokens_is_unchanged() -> None:
    text = '127.0.0.1:5000 - "WebSocket /ws/chat/?room=1" [accepted] eyJ-alone'
    assert RedactTokens().redact(text) == text


# --- the filter on records ---------------------------------------------------------------


def test_filter_masks_the_message() -> None:
    entry = record(f"connect /ws/?token={JWT}")
    assert RedactTokens().filter(entry) is True
    assert entry.getMessage() == "connect /ws/?token=[redacted]"


def test_filter_masks_tuple_args_and_keeps_other_args() -> None:
    marker = object()
    entry = record("%s %s %d %s %s", ("127.0.0.1", f"/ws/?token={JWT}", 101, None, marker))
    RedactTokens().filter(entry)
    assert isinstance(entry.args, tuple)
    assert entry.args[:4] == ("127.0.0.1", "/ws/?token=[redacted]", 101, None)
    assert entry.args[4] is marker


def test_filter_masks_dict_args_and_keeps_other_values() -> None:
    entry = record("%(path)s %(status)d", ({"path": f"/ws/?a=1&token={JWT}", "status": 403},))
    RedactTokens().filter(entry)
    assert entry.args == {"path": "/ws/?a=1&token=[redacted]", "status": 403}
    assert entry.getMessage() == "/ws/?a=1&token=[redacted] 403"


def test_filter_masks_jwt_in_args() -> None:
    entry = record("subprotocols %s", (["access_token", JWT],))
    RedactTokens().filter(entry)
    # An argument of another type holding a token is replaced by its redacted text.
    assert isinstance(entry.args, tuple)
    assert entry.args[0] == "['access_token', '[redacted]']"
    assert entry.getMessage() == "subprotocols ['access_token', '[redacted]']"
    entry = record("subprotocols %s", (f"access_token, {JWT}",))
    RedactTokens().filter(entry)
    assert entry.getMessage() == "subprotocols access_token, [redacted]"


def test_filter_masks_a_scope_logged_as_a_dict() -> None:
    # uvicorn --log-level trace: "%s [%d] Started scope=%s" with the scope dict itself.
    scope = {
        "type": "websocket",
        "query_string": f"room=1&token={JWT}".encode(),
        "headers": [(b"authorization", f"Bearer {JWT}".encode())],
        "subprotocols": ["access_token", JWT],
    }
    entry = record("%s [%d] Started scope=%s", ("127.0.0.1:5000 - ASGI", 1, scope))
    RedactTokens().filter(entry)
    message = entry.getMessage()
    assert JWT.split(".")[2] not in message
    assert "b'room=1&token=[redacted]'" in message
    assert "Bearer [redacted]" in message
    assert entry.args is not None
    assert entry.args[1] == 1


def test_filter_masks_a_token_split_over_arguments() -> None:
    header, payload, signature = JWT.split(".")
    entry = record("%s.%s.%s", (header, payload, signature))
    RedactTokens().filter(entry)
    assert entry.getMessage() == MASK
    assert entry.args is None


def test_filter_masks_a_non_string_message_holding_a_token() -> None:
    entry = record({"query_string": f"token={JWT}".encode()})
    RedactTokens().filter(entry)
    assert entry.getMessage() == "{'query_string': b'token=[redacted]'}"


def test_filter_leaves_a_record_whose_format_does_not_fit_its_arguments() -> None:
    entry = record("%d", ("not a number",))
    assert RedactTokens().filter(entry) is True
    assert entry.args == ("not a number",)


def test_filter_masks_the_traceback_and_the_stack() -> None:
    try:
        raise ValueError(f"bad token {JWT}")
    except ValueError:
        entry = record("failed", exc_info=sys.exc_info())
    entry.stack_info = f"Stack (most recent call last):\n  token={JWT}"
    RedactTokens().filter(entry)
    text = logging.Formatter().format(entry)
    assert JWT not in text
    assert "ValueError: bad token [redacted]" in text
    assert "token=[redacted]" in text


def test_filter_masks_a_traceback_already_formatted() -> None:
    entry = record("failed")
    entry.exc_text = f"Traceback ...\nValueError: {JWT}"
    RedactTokens().filter(entry)
    assert entry.exc_text == "Traceback ...\nValueError: [redacted]"


def test_filter_leaves_a_non_string_message() -> None:
    message = ValueError("boom")
    entry = record(message)
    assert RedactTokens().filter(entry) is True
    assert entry.msg is message


def test_filter_leaves_args_that_are_neither_tuple_nor_dict() -> None:
    entry = record("plain", None)
    assert RedactTokens().filter(entry) is True
    assert entry.args is None
    assert entry.getMessage() == "plain"


# --- which parameter ---------------------------------------------------------------------


def test_default_param_is_token() -> None:
    assert RedactTokens().redact("/ws/?token=opaque&jwt=keep") == "/ws/?token=[redacted]&jwt=keep"


def test_param_argument() -> None:
    redact = RedactTokens(param="access").redact
    assert redact("/ws/?access=opaque&token=keep") == "/ws/?access=[redacted]&token=keep"


def test_param_is_escaped() -> None:
    redact = RedactTokens(param="a.b").redact
    assert redact("?a.b=opaque&axb=keep") == "?a.b=[redacted]&axb=keep"


@override_settings(CHANNELS_JWT={"QUERY_PARAM": "jwt"})
def test_param_defaults_to_query_param_setting() -> None:
    redactor = RedactTokens()
    assert redactor.redact("/ws/?jwt=opaque&token=keep") == "/ws/?jwt=[redacted]&token=keep"


def test_setting_is_read_when_filtering_not_when_created() -> None:
    redactor = RedactTokens()
    with override_settings(CHANNELS_JWT={"QUERY_PARAM": "jwt"}):
        assert redactor.redact("/ws/?jwt=opaque") == "/ws/?jwt=[redacted]"


@override_settings(CHANNELS_JWT={"QUERY_PARAM": "jwt"})
def test_param_argument_wins_over_the_setting() -> None:
    redactor = RedactTokens(param="access")
    assert redactor.redact("/ws/?access=opaque&jwt=keep") == "/ws/?access=[redacted]&jwt=keep"


@pytest.mark.parametrize("value", ["", None, 42], ids=repr)
def test_unusable_query_param_setting_falls_back_to_token(value: Any) -> None:
    with override_settings(CHANNELS_JWT={"QUERY_PARAM": value}):
        assert RedactTokens().redact("/ws/?token=opaque") == "/ws/?token=[redacted]"


def test_filter_name_is_passed_to_logging() -> None:
    redactor = RedactTokens("uvicorn")
    assert redactor.filter(record("x", name="other")) is True  # never drops a record
    assert redactor.name == "uvicorn"


def run_python(code: str, env: dict[str, str]) -> str:
    """Run ``code`` in a fresh interpreter (Django not set up) and return its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout.strip()


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without Django settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *extra.pop("PYTHONPATH", "").split(os.pathsep)])
    env.update(extra)
    return env


def test_filter_works_without_django_settings() -> None:
    code = """
        from channels_jwt.logs import RedactTokens
        print(RedactTokens().redact("/ws/?token=opaque"))
    """
    assert run_python(code, clean_env()) == "/ws/?token=[redacted]"


def test_filter_created_before_settings_are_loaded_reads_query_param(tmp_path: Path) -> None:
    # uvicorn applies --log-config before it imports the app, so the filter is built before
    # anything has touched django.conf.settings, though DJANGO_SETTINGS_MODULE is set.
    (tmp_path / "redact_settings.py").write_text(
        'SECRET_KEY = "x"\nCHANNELS_JWT = {"QUERY_PARAM": "jwt"}\n'
    )
    code = """
        from channels_jwt.logs import RedactTokens
        print(RedactTokens().redact("/ws/?jwt=opaque"))
    """
    env = clean_env(PYTHONPATH=str(tmp_path), DJANGO_SETTINGS_MODULE="redact_settings")
    assert run_python(code, env) == "/ws/?jwt=[redacted]"


# --- real loggers and formatters ---------------------------------------------------------


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A fresh logger with ``RedactTokens`` attached and a handler writing to a buffer."""
    logger = logging.getLogger("tests.test_logs.server")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    redactor = RedactTokens()
    logger.addHandler(handler)
    logger.addFilter(redactor)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.removeFilter(redactor)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def test_logger_never_writes_the_token(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    # The line uvicorn writes for every WebSocket handshake, and a few other shapes.
    logger.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", f"/ws/?token={JWT}")
    logger.info("%(path)s", {"path": f"/ws/?token={JWT}"})
    logger.info(f"scope headers authorization: Bearer {JWT}")
    output = stream.getvalue()
    assert JWT not in output
    for part in JWT.split("."):
        assert part not in output
    assert output.splitlines() == [
        'INFO 127.0.0.1:5000 - "WebSocket /ws/?token=[redacted]" [accepted]',
        "INFO /ws/?token=[redacted]",
        "INFO scope headers authorization: Bearer [redacted]",
    ]


@pytest.mark.parametrize(
    ("msg", "args"),
    [
        pytest.param("path /ws/?room=1&token=%s", (JWT,), id="positional"),
        pytest.param("path /ws/?room=1&token=%(token)s", ({"token": JWT},), id="mapping"),
    ],
)
def test_placeholder_right_after_the_param_still_formats(
    captured: tuple[logging.Logger, io.StringIO], msg: str, args: tuple[Any, ...]
) -> None:
    # Masking the format string must not eat the placeholder that carries the token.
    logger, stream = captured
    logger.info(msg, *args)
    assert stream.getvalue() == "INFO path /ws/?room=1&token=[redacted]\n"


def test_filter_on_a_handler_redacts_child_logger_records() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactTokens())
    parent = logging.getLogger("tests.test_logs.parent")
    child = logging.getLogger("tests.test_logs.parent.child")
    parent.addHandler(handler)
    parent.setLevel(logging.INFO)
    try:
        child.info("path %s", f"/ws/?token={JWT}")
    finally:
        parent.removeHandler(handler)
        parent.setLevel(logging.NOTSET)
    assert stream.getvalue() == "path /ws/?token=[redacted]\n"


def test_uvicorn_access_formatter_formats_a_redacted_record() -> None:
    entry = record(
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/ws/?token={JWT}&room=1", "1.1", 200),
        name="uvicorn.access",
    )
    assert RedactTokens().filter(entry) is True
    formatter = AccessFormatter(
        '%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False
    )
    line = formatter.format(entry)
    assert line == '127.0.0.1:5000 - "GET /ws/?token=[redacted]&room=1 HTTP/1.1" 200 OK'
    assert JWT not in line


# loggable_path: what channels_jwt's own lines show of a client-chosen path


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        pytest.param("/ws/chat/", "/ws/chat/", id="plain"),
        pytest.param("/ws/caf\u00e9/", "/ws/caf\u00e9/", id="printable-unicode-kept"),
        pytest.param("/ws/\r\nforged line", "/ws/\\r\\nforged line", id="crlf"),
        pytest.param("/ws/\x1b[2J\x1b[31m", "/ws/\\x1b[2J\\x1b[31m", id="escape-sequences"),
        pytest.param("/ws/\x00\x7f\x85", "/ws/\\x00\\x7f\\x85", id="nul-del-nel"),
        pytest.param("/ws/\u2028\u202e", "/ws/\\u2028\\u202e", id="line-separator-bidi"),
        pytest.param("", "-", id="empty"),
    ],
)
def test_loggable_path_escapes_unprintable_characters(path: str, logged: str) -> None:
    assert loggable_path({"path": path}) == logged


def test_loggable_path_without_a_path() -> None:
    assert loggable_path({}) == "-"
    assert loggable_path({"path": b"/ws/"}) == "-"


def test_loggable_path_masks_a_token_and_cuts_a_long_path() -> None:
    token = hs_token(claims_for())
    assert loggable_path({"path": f"/ws/{token}/"}) == f"/ws/{MASK}/"
    long = "/ws/" + "a" * 1000
    assert loggable_path({"path": long}) == long[:MAX_LOGGED_PATH] + "..."
    # Masked before it is cut: no prefix of a token survives the cut.
    tail = "/" + "b" * (MAX_LOGGED_PATH - 10) + token
    assert "eyJ" not in loggable_path({"path": tail})
