"""``RedactTokens``: a logging filter that keeps tokens out of server logs.

uvicorn logs every WebSocket handshake at INFO with the path *and its query string*, so a
token sent as ``?token=...`` lands in the log. Attach this filter to the logger that emits
(``uvicorn.error`` for those lines, ``uvicorn.access`` for HTTP access lines) or to your
handlers; Python does not apply a parent logger's filters to records of its children.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
MASK = "[redacted]"
DEFAULT_PARAM = "token"


#: Paths longer than this are cut in channels_jwt's own log lines.
MAX_LOGGED_PATH = 200


def loggable_path(scope: Mapping[str, Any]) -> str:
    """The scope's path as channels_jwt writes it in a log line.

    Servers percent-decode the path, so a client chooses every character of it: control
    characters are escaped (CR and LF would forge log lines, ESC sequences recolour a
    terminal), JWT-shaped text is masked, and the result is cut to ``MAX_LOGGED_PATH``.
    """
    path = scope.get("path")
    if not isinstance(path, str) or not path:
        return "-"
    if not path.isprintable():
        path = "".join(
            char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
            for char in path
        )
    path = _JWT.sub(MASK, path)
    return path if len(path) <= MAX_LOGGED_PATH else path[:MAX_LOGGED_PATH] + "..."


@functools.lru_cache(maxsize=8)
def _param_value(param: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9_.~%-])({re.escape(param)}=)[^&\s\"'#]*")


class RedactTokens(logging.Filter):
    """Mask the token query parameter's value and anything shaped like a JWT.

    ``param`` is the query parameter to mask; by default ``CHANNELS_JWT["QUERY_PARAM"]``,
    looked up when a record is filtered (logging is often configured before Django's
    settings are loaded), or ``"token"`` while the settings cannot be read.
    """

    def __init__(self, name: str = "", param: str | None = None) -> None:
        super().__init__(name)
        self.param = param

    def redact(self, text: str) -> str:
        """``text`` with every token value replaced by ``[redacted]``."""
        text = _param_value(self.param or _configured_param()).sub(rf"\g<1>{MASK}", text)
        return _JWT.sub(MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place, whatever its arguments are; never drops a record.

        With arguments, the message is a format string: only JWT-shaped text is masked in it,
        so a placeholder such as ``token=%s`` survives and its argument is redacted instead
        (structured formatters, such as uvicorn's access log, keep their arguments). An
        argument of any other type (uvicorn's trace level logs whole scopes as dicts, with
        the query string and headers as bytes) is replaced by its redacted text when that
        text holds a token. Last, the formatted message is checked as a whole, and so are the
        traceback and stack of the record.
        """
        if isinstance(record.msg, str):
            record.msg = _JWT.sub(MASK, record.msg) if record.args else self.redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._redacted_arg(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: self._redacted_arg(arg) for key, arg in record.args.items()}
        self._redact_message(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.redact(_TRACEBACKS.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True

    def _redacted_arg(self, arg: Any) -> Any:
        if isinstance(arg, str):
            return self.redact(arg)
        if arg is None or isinstance(arg, int | float):
            return arg
        text = str(arg)
        redacted = self.redact(text)
        return arg if redacted == text else redacted

    def _redact_message(self, record: logging.LogRecord) -> None:
        # A token split over two arguments, or a message that is not a string.
        try:
            message = record.getMessage()
        except Exception:  # a bad format: logging reports it when a handler formats it
            return
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None


_TRACEBACKS = logging.Formatter()


def _configured_param() -> str:
    from channels_jwt.conf import settings

    try:
        param = settings.value("QUERY_PARAM")
    except ImproperlyConfigured:
        return DEFAULT_PARAM
    return param if isinstance(param, str) and param else DEFAULT_PARAM
