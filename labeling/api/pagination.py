"""Page-number pagination whose malformed ``?page=`` is a 400 naming the parameter."""

from __future__ import annotations

from rest_framework import pagination
from rest_framework.exceptions import ValidationError


class PageNumberPagination(pagination.PageNumberPagination):
    """DRF's page numbers; ``?page=abc`` or ``?page=0`` is bad input, not a missing page.

    A well-formed page past the end is still 404 "Invalid page.", as in DRF.
    """

    def get_page_number(self, request, paginator):
        value = request.query_params.get(self.page_query_param) or 1
        if value in self.last_page_strings:
            return paginator.num_pages
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = 0
        if number < 1:
            raise ValidationError({self.page_query_param: f"{value!r} is not a page number (1, 2, ... or 'last')."})
        return number
