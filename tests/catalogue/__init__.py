"""The hostile-input catalogue (research/security.md section 4), one test per row.

``kit.py`` builds the hostile tokens and scopes and drives a handshake through the real
middleware; ``token_rows.py`` and ``scope_rows.py`` hold the rows as data, run by
``test_rows.py``; the ``test_*.py`` files beside them hold the rows that need a JWKS
endpoint, an open socket, a user model or a configuration of their own. Every test id
starts with (or contains) its catalogue id; ``test_catalogue.py`` checks each id has a test.
"""
