"""URLs: the chat page at ``/`` and its JSON API under ``/api/``."""

from __future__ import annotations

from django.urls import include, path

from chat import views

urlpatterns = [
    path("", views.index, name="index"),
    path("api/", include("chat.urls")),
]
