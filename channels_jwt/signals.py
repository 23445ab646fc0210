"""Django signals sent by the middleware.

``authenticated`` is sent after a successful handshake with ``scope``, ``user``, ``claims``
and ``source``. ``authentication_failed`` is sent for every rejection with ``scope`` (the
credential already removed), ``reason``, ``close_code``, ``source`` (or ``None``) and
``error`` (the exception). The token itself is never sent. The sender is the middleware
class. Receivers run with ``send_robust`` semantics: an exception in a receiver is logged and
does not change the outcome of the handshake.
"""

from __future__ import annotations

from django.dispatch import Signal

authenticated = Signal()
authentication_failed = Signal()
