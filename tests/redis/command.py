"""The third process: revoke from outside the servers, as a view, a task or a command would.

``python -m tests.redis.command disconnect-user PK`` or ``... revoke-token`` (the token on
stdin), with ``tests.redis.server_settings``: the same Redis, so the same cache and layer.
"""

from __future__ import annotations

import sys

import django


def main(argv: list[str]) -> int:
    """Run one revocation; the exit status is 0 once it has been sent."""
    django.setup()
    from channels_jwt import disconnect_user, revoke_token

    if argv == ["revoke-token"]:
        revoke_token(sys.stdin.read().strip())
    elif len(argv) == 2 and argv[0] == "disconnect-user":
        disconnect_user(int(argv[1]))
    else:
        print("usage: disconnect-user PK | revoke-token (token on stdin)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
