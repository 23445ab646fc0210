"""``manage.py seed_demo``: create the demo users (idempotent) and print how to log in."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

#: (username, password, active). Demo passwords: fine on 127.0.0.1, nowhere else.
DEMO_USERS = [
    ("alice", "alice-demo-password", True),
    ("bob", "bob-demo-password", True),
    ("carol", "carol-demo-password", False),
]


class Command(BaseCommand):
    """Create or reset alice and bob (active) and carol (inactive)."""

    help = "Create the demo users (alice and bob active, carol inactive) and print them."

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        self.stdout.write("Demo users (username / password):")
        for username, password, active in DEMO_USERS:
            user, created = user_model.objects.get_or_create(username=username)
            changed = created or user.is_active != active or not user.check_password(password)
            if changed:
                user.set_password(password)
                user.is_active = active
                user.save()
            state = "active" if active else "INACTIVE: login refused; her tokens get 4403"
            action = "created" if created else ("reset" if changed else "unchanged")
            self.stdout.write(f"  {username:<6} / {password:<20} ({state}; {action})")
