"""URLs: the chat page at ``/``, the GraphQL feed page at ``/feed/``, the JSON API under ``/api/``.

``/graphql/`` is not here: ``config/asgi.py`` routes it to Strawberry before Django.
"""

from __future__ import annotations

from django.urls import include, path

from chat import views

urlpatterns = [
    path("", views.index, name="index"),
    path("feed/", views.feed, name="feed"),
    path("api/", include("chat.urls")),
]
