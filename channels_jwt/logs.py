"""``RedactTokens``: a logging filter that keeps tokens out of server logs.

uvicorn logs every WebSocket handshake at INFO with the path *and its query string*, so a
token sent as ``?token=...`` lands in the log. Attach this filter to the logger that emits
(``uvicorn.error`` for those lines, ``uvicorn.access`` for HTTP access lines) or to your
handlers; Python does not apply a parent logger's filters to records of its children.
"""

from __future__ import annotations

import logging
import re
from typing import Any

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
MASK = "[redacted]"


class RedactTokens(logging.Filter):
    """Mask the token query parameter's value and anything shaped like a JWT.

    ``param`` is the query parameter to mask; by default ``CHANNELS_JWT["QUERY_PARAM"]``
    (``"token"``), read when the filter is created.
    """

    def __init__(self, name: str = "", param: str | None = None) -> None:
        super().__init__(name)
        self.param = param or _configured_param()
        self._param_value = re.compile(
            rf"(?<![A-Za-z0-9_.~%-])({re.escape(self.param)}=)[^&\s\"'#]*"
        )

    def redact(self, text: str) -> str:
        """``text`` with every token value replaced by ``[redacted]``."""
        text = self._param_value.sub(rf"\g<1>{MASK}", text)
        return _JWT.sub(MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the message and its arguments in place; never drops a record."""
        if isinstance(record.msg, str):
            record.msg = self.redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._redacted_arg(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: self._redacted_arg(arg) for key, arg in record.args.items()}
        return True

    def _redacted_arg(self, arg: Any) -> Any:
        return self.redact(arg) if isinstance(arg, str) else arg


def _configured_param() -> str:
    from django.conf import settings

    if settings.configured:
        from channels_jwt.conf import settings as channels_jwt_settings

        param = channels_jwt_settings.value("QUERY_PARAM")
        if isinstance(param, str) and param:
            return param
    return "token"
