"""A user model keyed by UUID, installed only by the test of catalogue row U11.

``tests/catalogue/test_users_and_revocation.py`` adds this app to ``INSTALLED_APPS`` and points
``AUTH_USER_MODEL`` at :class:`~tests.uuid_users.models.UUIDUser` for one test, and creates the
table itself (no migrations: the app is never installed for the rest of the suite).
"""
