"""Sphinx configuration of the channels-jwt documentation (``make docs``).

Pages are MyST Markdown; the API reference is autodoc from the package's docstrings, which
needs Django set up first (the package imports ``django.conf`` settings lazily, but autodoc
also imports ``channels_jwt.users`` and friends). Minimal settings are configured here, so the
docs build from the sdist too (which ships no tests): no database is touched while they build.

There is no intersphinx: CI has no network. References to Python's, Django's or PyJWT's own
types therefore cannot resolve and are exempted from nitpicky mode below, by module prefix.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import django
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if "DJANGO_SETTINGS_MODULE" not in os.environ:
    settings.configure(
        # simplejwt's settings read it at import (autodoc imports channels_jwt.logout).
        SECRET_KEY="docs-build-only",  # noqa: S106 (signs nothing)
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "channels_jwt"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    )
django.setup()

import channels_jwt  # noqa: E402

project = "channels-jwt"
author = "channels-jwt developers"
copyright = "channels-jwt developers"
version = release = channels_jwt.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# MyST: definition lists for the settings reference, ::: fences for admonitions with Markdown
# inside, and anchors for headings so pages can link to a section (page.md#a-heading).
myst_enable_extensions = ["deflist", "colon_fence"]
myst_heading_anchors = 3

# The API reference documents names where users import them from (``channels_jwt.X``);
# autodoc adds the defining module as the canonical name, so docstrings that say
# :class:`AuthenticationFailed` inside ``channels_jwt.exceptions`` still resolve.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True

nitpicky = True
nitpick_ignore_regex = [
    # Types of the standard library, Django, Channels and PyJWT: without intersphinx (no
    # network in CI) nothing can link to them.
    (
        r"py:(class|obj|data|exc|func|meth|attr)",
        r"(typing|collections\.abc|datetime|types|logging|enum|asyncio|contextlib|django"
        r"|channels|jwt)(\..*)?",
    ),
    # Names the type checker sees that have no page of their own: the ASGI callable aliases
    # and Python's builtins.
    (r"py:(class|obj)", r"(ASGIApp|Scope|Receive|Send|Transport|Message|T|Any|Exception)"),
    # Django's types named in signatures without their module (imported for type checking).
    (r"py:class", r"(Field|Model|AbstractBaseUser)"),
]


def resolve_unqualified(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Link an unqualified name in a docstring to the one documented object of that name.

    Docstrings say :class:`TokenInvalid` in ``channels_jwt.users`` and :func:`revoke_token`
    in ``channels_jwt.revocation``, where the API page documents them as ``channels_jwt.X``
    (where users import them from). Sphinx only looks in the docstring's own module; when
    exactly one documented object has the name, this is unambiguous.
    """
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or "." in target:
        return None
    domain = env.get_domain("py")
    matches = [
        name
        for name, entry in domain.objects.items()
        if name.rsplit(".", 1)[-1] == target and not entry.aliased
    ]
    if len(matches) != 1:
        return None
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], matches[0], node, contnode
    )


def setup(app: Any) -> None:
    app.connect("missing-reference", resolve_unqualified)


html_theme = "furo"
html_title = f"channels-jwt {release}"
html_static_path: list[str] = []
pygments_style = "friendly"
pygments_dark_style = "monokai"
