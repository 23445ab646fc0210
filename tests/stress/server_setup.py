"""Prepare the load tests' database and denylist, with the server's own settings.

``python -m tests.stress.server_setup users N`` migrates the SQLite database and creates
``N`` active users and one inactive one, printing their primary keys as JSON.
``python -m tests.stress.server_setup revoke`` reads a JSON list of token claims on stdin
and revokes each with ``channels_jwt.revoke_token`` (the cache denylist the server checks).
"""

from __future__ import annotations

import json
import sys

import django


def create_users(count: int) -> dict[str, object]:
    """Migrate, then create ``count`` active users and one inactive user."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    user_model = get_user_model()
    active = [user_model.objects.create_user(username=f"load-{n}").pk for n in range(count)]
    inactive = user_model.objects.create_user(username="load-inactive", is_active=False).pk
    return {"active": active, "inactive": inactive}


def revoke(claims_list: list[dict[str, object]]) -> int:
    """Denylist every token in ``claims_list``; return how many."""
    from channels_jwt import revoke_token

    for claims in claims_list:
        revoke_token(claims)
    return len(claims_list)


def main() -> None:
    django.setup()
    command = sys.argv[1]
    if command == "users":
        print(json.dumps(create_users(int(sys.argv[2]))))
    elif command == "revoke":
        print(json.dumps({"revoked": revoke(json.load(sys.stdin))}))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
