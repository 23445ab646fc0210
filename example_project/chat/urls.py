"""The JSON API the page and the Python client use."""

from __future__ import annotations

from django.urls import path

from chat import views

urlpatterns = [
    path("csrf", views.csrf, name="csrf"),
    path("session", views.session_view, name="session"),
    path("login", views.login_view, name="login"),
    path("refresh", views.refresh_view, name="refresh"),
    path("logout", views.logout_view, name="logout"),
]
