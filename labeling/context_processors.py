"""What every page's header needs to know about the signed-in user."""

from __future__ import annotations

from django.utils.functional import SimpleLazyObject

from labeling import permissions


def navigation(request) -> dict:
    """``show_api_link``: the header links the API documentation for admins only; it is
    read only when a page's header asks."""
    user = getattr(request, "user", None)
    return {"show_api_link": SimpleLazyObject(lambda: permissions.administers_any_project(user))}
