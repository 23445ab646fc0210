"""The third process: revoke from outside the servers, as a view, a task or a command would.

``python -m tests.redis.command disconnect-user PK`` or ``... revoke-token`` (the token on
stdin), with ``tests.redis.server_settings``: the same Redis, so the same cache and layer.
``... disconnect-users PK [PK ...]`` disconnects many users at once (concurrently, on one
event loop) and prints, as JSON, the wall-clock ``time.time()`` just before the first call
(``started``) and just after the last one returned (``finished``): the scale test measures
each close against ``started``, without this process's start-up.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import django


async def disconnect_users(pks: list[int]) -> tuple[float, float]:
    """``adisconnect_user`` for every pk, all at once; when the first began, the last ended."""
    from channels_jwt import adisconnect_user

    started = time.time()
    await asyncio.gather(*(adisconnect_user(pk) for pk in pks))
    return started, time.time()


def main(argv: list[str]) -> int:
    """Run the revocations; the exit status is 0 once they have been sent."""
    django.setup()
    from asgiref.sync import async_to_sync

    from channels_jwt import disconnect_user, revoke_token

    if argv == ["revoke-token"]:
        revoke_token(sys.stdin.read().strip())
    elif len(argv) == 2 and argv[0] == "disconnect-user":
        disconnect_user(int(argv[1]))
    elif len(argv) >= 2 and argv[0] == "disconnect-users":
        started, finished = async_to_sync(disconnect_users)([int(pk) for pk in argv[1:]])
        print(json.dumps({"started": started, "finished": finished}))
    else:
        print(
            "usage: disconnect-user PK | disconnect-users PK [PK ...] | revoke-token (token on "
            "stdin)",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
