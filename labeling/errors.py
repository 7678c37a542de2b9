"""One error family for the whole app, and the DRF handler that renders it.

Services raise ``ApplicationError`` (or a subclass); the API answers with
``{"message", "code", "extra"}`` and the subclass's HTTP status.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApplicationError(Exception):
    status_code = 400
    default_code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.extra = extra or {}

    def as_dict(self) -> dict:
        """The body every answer carries: ``{"message", "code", "extra"}``."""
        return {"message": self.message, "code": self.code, "extra": self.extra}


class NotFound(ApplicationError):
    status_code = 404
    default_code = "not_found"


class Forbidden(ApplicationError):
    status_code = 403
    default_code = "forbidden"


class Conflict(ApplicationError):
    status_code = 409
    default_code = "conflict"


def exception_handler(exc, context):
    """Render every error as ``{"message", "code", "extra"}``."""
    if isinstance(exc, ApplicationError):
        return Response(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        exc = drf_exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    elif isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        fields = response.data if isinstance(response.data, dict) else {"non_field_errors": response.data}
        names = ", ".join(str(k) for k in fields)
        first = _first_message(fields)
        message = f"Invalid input in {names}: {first}" if first else f"Invalid input in {names}."
        response.data = {"message": message, "code": "invalid", "extra": {"fields": fields}}
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else response.data
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        response.data = {"message": str(detail), "code": code, "extra": {}}
    return response


def _first_message(data) -> str:
    if isinstance(data, dict):
        for value in data.values():
            found = _first_message(value)
            if found:
                return found
        return ""
    if isinstance(data, list | tuple):
        for value in data:
            found = _first_message(value)
            if found:
                return found
        return ""
    return str(data)
