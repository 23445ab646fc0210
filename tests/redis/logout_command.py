"""The third process of the logout test: log in and out through simplejwt, as its views do.

With ``tests.redis.logout_settings`` (simplejwt's blacklist app installed):

- ``python -m tests.redis.logout_command login PK`` issues a session to the user ``PK``
  (``RefreshToken.for_user``, recorded as outstanding) and prints it as JSON:
  ``{"refresh": ..., "access": ...}``;
- ``python -m tests.redis.logout_command logout`` blacklists the refresh token on stdin
  (``RefreshToken(token).blacklist()``), as simplejwt's logout view does. Nothing else runs:
  whatever reaches the servers goes through channels_jwt's receiver.
"""

from __future__ import annotations

import json
import sys

import django


def main(argv: list[str]) -> int:
    """Log in or out; the exit status is 0 once it is done (and committed)."""
    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework_simplejwt.tokens import RefreshToken

    if len(argv) == 2 and argv[0] == "login":
        refresh = RefreshToken.for_user(get_user_model().objects.get(pk=int(argv[1])))
        print(json.dumps({"refresh": str(refresh), "access": str(refresh.access_token)}))
    elif argv == ["logout"]:
        RefreshToken(sys.stdin.read().strip()).blacklist()
    else:
        print("usage: login PK | logout (the refresh token on stdin)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
