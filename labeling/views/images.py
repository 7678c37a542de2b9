"""The one view that serves stored images, and records each unblurred one as a reveal."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.views.decorators.http import require_GET

from labeling.selectors.images import image_get_for_user
from labeling.services.media import media_open, sketch_ensure
from labeling.services.wellbeing import reveal_record
from labeling.views.shortcuts import page_errors

REVEALING = ("original", "thumbnail")


@login_required
@require_GET
@page_errors()
def image_file(request, image_id: int, variant: str):
    """Serve a stored image to a member of its project.

    ``blurred`` and ``sketch`` are safe to show. ``original`` and ``thumbnail`` show the
    unblurred picture: each request for them is recorded as a reveal, and refused once
    the moderator's daily budget of sensitive reveals is spent.
    """
    image = image_get_for_user(user=request.user, image_id=image_id)
    name = {
        "thumbnail": image.thumbnail,
        "blurred": image.blurred,
        "sketch": image.sketch,
        "original": image.original,
    }.get(variant)
    if not name:
        raise Http404("No such image file.")
    if variant == "sketch":
        sketch_ensure(thumbnail=image.thumbnail, sketch=image.sketch)
    reveal = reveal_record(user=request.user, image=image) if variant in REVEALING else None
    response = FileResponse(media_open(name), content_type=_content_type(name))
    response["Cache-Control"] = "private, no-store" if reveal else "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    if reveal is not None:
        response["X-Veil-Reveal"] = str(reveal.pk)
    return response


def _content_type(name: str) -> str:
    ext = name.rsplit(".", 1)[-1].lower()
    return {
        "jpg": "image/jpeg",
        "png": "image/png",
        "gif": "image/gif",
        "webp": "image/webp",
        "bmp": "image/bmp",
        "tif": "image/tiff",
    }.get(ext, "application/octet-stream")
