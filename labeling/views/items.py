"""The item browser and the item page: find an image, inspect it, correct a past label.

Both are read-only pages; the item page's reveal goes through the access-checked image
view (each original shown is a recorded, budgeted reveal, as on the labeling page) and its
corrections through the REST API, driven by ``static/js/item.js``.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from labeling import permissions
from labeling.api.serializers import ItemQuerySerializer
from labeling.errors import ApplicationError
from labeling.models import Image
from labeling.selectors.items import AGREEMENTS, LABEL_SOURCES, SORTS, item_get_for_user, items_page
from labeling.selectors.projects import project_role
from labeling.services.preferences import preferences_get
from labeling.views.shortcuts import page_errors, project_for_page

SORT_NAMES = {
    "id": "Oldest first",
    "-id": "Newest first",
    "confidence": "Least confident first",
    "-confidence": "Most confident first",
    "entropy": "Lowest entropy first",
    "-entropy": "Highest entropy (most uncertain) first",
}


@login_required
@require_GET
@page_errors()
def item_browser(request, slug: str):
    project = project_for_page(request, slug)
    is_admin = permissions.can_review.allows(project_role(user=request.user, project=project))
    params = ItemQuerySerializer(data=request.GET)
    page, errors = None, []
    if params.is_valid():
        try:
            page = items_page(
                user=request.user,
                project=project,
                query=params.to_query(),
                cursor=params.validated_data["cursor"] or None,
                limit=params.validated_data["limit"],
            )
        except ApplicationError as exc:
            errors = [exc.message]
    else:
        errors = [f"{name}: {' '.join(str(m) for m in messages)}" for name, messages in params.errors.items()]
    next_url = None
    if page is not None and page.next_cursor:
        query = request.GET.copy()
        query["cursor"] = page.next_cursor
        next_url = f"{request.path}?{query.urlencode()}"
    first = request.GET.copy()
    first.pop("cursor", None)
    context = {
        "project": project,
        "is_admin": is_admin,
        "page": page,
        "errors": errors,
        "values": request.GET,
        "next_url": next_url,
        "first_url": f"{request.path}?{first.urlencode()}" if "cursor" in request.GET else None,
        "categories": list(project.categories.all()),
        "statuses": Image.Status.choices,
        "splits": Image.Split.choices,
        "reasons": [choice for choice in Image._meta.get_field("reason").choices if choice[0]],
        "label_sources": LABEL_SOURCES,
        "agreements": AGREEMENTS,
        "sorts": [(key, SORT_NAMES[key]) for key in SORTS],
    }
    return render(request, "labeling/items.html", context)


@login_required
@require_GET
@page_errors()
def item_page(request, slug: str, image_id: int):
    project = project_for_page(request, slug)
    item = item_get_for_user(user=request.user, project=project, image_id=image_id)
    preferences = preferences_get(user=request.user, project=project)
    config = {
        "image_id": item.image.pk,
        "urls": {
            "original": reverse("image-file", args=[item.image.pk, "original"]),
            "sketch": reverse("image-file", args=[item.image.pk, "sketch"]),
            "reveal_finish": reverse("api-reveal-finish", args=[0]).replace("/0/", "/{id}/"),
            "correct": reverse("api-annotation-correct", args=[0]).replace("/0/", "/{id}/"),
        },
    }
    context = {
        "project": project,
        "item": item,
        "preferences": preferences,
        "categories": list(project.categories.all()),
        "config": config,
    }
    return render(request, "labeling/item.html", context)
