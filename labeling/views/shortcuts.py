"""What every page does alike: find the project, and answer an ``ApplicationError``.

A page answers a refusal one way: "not found" is a 404 page (a project or image the user
may not see does not reveal that it exists); a moderator asking for an admin's page or
form goes back to the project page with a message; any other refusal goes back to the
page the form came from with the message. A request that asks for JSON (the pages'
scripts) gets the API's ``{"message", "code", "extra"}`` body and status instead, as does
a request with no page to go back to (an image file).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import redirect

from labeling.errors import ApplicationError, Forbidden, NotFound
from labeling.models import Project
from labeling.selectors.projects import project_get_for_user


class AdminOnly(Forbidden):
    """A moderator asked for a page or a form of the project's admins."""


def project_for_page(request, slug: str, admin: bool = False) -> Project:
    """The project ``slug`` if the user is a member of it (an admin, with ``admin``)."""
    try:
        return project_get_for_user(user=request.user, slug=slug, admin=admin)
    except Forbidden as exc:
        doing = "open this page" if request.method == "GET" else "do this"
        raise AdminOnly(f"Only admins of the project can {doing}.", code=exc.code) from exc


def wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def page_errors(back: str | None = None) -> Callable:
    """Turn the view's ``ApplicationError`` into the page's answer (see the module's docstring).

    ``back``: the name of the page, taking the view's ``slug``, that a refused form
    returns to; None where there is none.
    """

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            try:
                return view(request, *args, **kwargs)
            except ApplicationError as exc:
                return error_response(request, exc, back=back, slug=kwargs.get("slug"))

        return wrapper

    return decorate


def error_response(request, exc: ApplicationError, *, back: str | None, slug: str | None):
    if wants_json(request):
        return JsonResponse(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, NotFound):
        raise Http404(exc.message) from exc
    if isinstance(exc, AdminOnly):
        messages.error(request, exc.message)
        return redirect("project-detail", slug=slug)
    if back is None:
        return JsonResponse(exc.as_dict(), status=exc.status_code)
    messages.error(request, exc.message)
    return redirect(back, slug=slug)
