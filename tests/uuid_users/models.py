"""A minimal custom user model with a UUID primary key (catalogue row U11)."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models


class UUIDUser(AbstractBaseUser):
    """A user whose primary key is a UUID, as many projects choose."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    username = models.CharField(max_length=150, unique=True)
    is_active = models.BooleanField(default=True)

    USERNAME_FIELD = "username"
    objects: ClassVar[BaseUserManager[UUIDUser]] = BaseUserManager()

    class Meta:
        app_label = "uuid_users"
