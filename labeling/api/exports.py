"""Labeled sets out: export jobs, small exports streamed, and export files."""

from __future__ import annotations

from django.http import FileResponse, StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import permissions
from labeling.api.serializers import JobOutputSerializer
from labeling.errors import ApplicationError
from labeling.models import Job
from labeling.selectors.jobs import export_get_for_user
from labeling.selectors.projects import project_get_for_user
from labeling.services import exports
from labeling.services.media import media_open

DIRECT_EXPORT_LIMIT = 5000


class ExportInputSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=exports.FORMATS)
    categories = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    sources = serializers.ListField(child=serializers.CharField(max_length=20), required=False)
    min_agreement = serializers.FloatField(min_value=0.0, max_value=1.0, required=False, allow_null=True)
    round = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False, allow_null=True)
    split = serializers.ChoiceField(choices=["pool", "eval"], required=False, allow_null=True)
    date_from = serializers.DateTimeField(required=False, allow_null=True)
    date_to = serializers.DateTimeField(required=False, allow_null=True)


def _filters(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "format"}


class ExportJobApi(APIView):
    """Start an export job; its file is downloaded from ``/api/exports/<job id>/download/``."""

    @extend_schema(request=ExportInputSerializer, responses={202: JobOutputSerializer})
    def post(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug, rule=permissions.can_export)
        data = ExportInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = exports.export_job_submit(
            actor=request.user,
            project=project,
            fmt=data.validated_data["format"],
            filters=_filters(data.validated_data),
        )
        job.refresh_from_db()
        return Response(JobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ExportStreamApi(APIView):
    """Stream a small export (JSONL, CSV or Label Studio JSON) straight into the response."""

    @extend_schema(
        parameters=[ExportInputSerializer],
        responses={
            (200, exports.CONTENT_TYPES["jsonl"]): OpenApiTypes.STR,
            (200, exports.CONTENT_TYPES["csv"]): OpenApiTypes.STR,
            (200, exports.CONTENT_TYPES["labelstudio"]): OpenApiTypes.ANY,
        },
    )
    def get(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug, rule=permissions.can_export)
        params = {
            k: (request.query_params.getlist(k) if k in ("categories", "sources") else v)
            for k, v in request.query_params.items()
        }
        data = ExportInputSerializer(data=params)
        data.is_valid(raise_exception=True)
        fmt = data.validated_data["format"]
        if fmt in exports.ARCHIVE_FORMATS:
            raise ApplicationError(
                f"{fmt} exports are archives: start an export job instead.", extra={"field": "format"}
            )
        filters = exports.ExportFilters.from_dict(project, _filters(data.validated_data))
        count = exports.export_size(project=project, filters=filters)
        if count > DIRECT_EXPORT_LIMIT:
            raise ApplicationError(
                f"{count} images match: more than {DIRECT_EXPORT_LIMIT} are exported by a job.",
                code="too_large",
                extra={"field": "format", "count": count},
            )
        rows = exports.export_rows(project=project, filters=filters)
        if fmt == "jsonl":
            chunks = exports.jsonl_lines(rows)
        elif fmt == "csv":
            chunks = exports.csv_lines(rows)
        else:
            chunks = exports.labelstudio_chunks(
                rows,
                image_url=lambda image: request.build_absolute_uri(reverse("image-file", args=[image.pk, "original"])),
            )
        response = StreamingHttpResponse(chunks, content_type=exports.CONTENT_TYPES[fmt])
        response["Content-Disposition"] = f'attachment; filename="{slug}.{exports.EXTENSIONS[fmt]}"'
        return response


class ExportDownloadApi(APIView):
    @extend_schema(
        responses={
            (200, content_type): OpenApiTypes.ANY if content_type == "application/json" else OpenApiTypes.BINARY
            for content_type in sorted(set(exports.CONTENT_TYPES.values()))
        }
    )
    def get(self, request, job_id: int):
        job = export_get_for_user(user=request.user, job_id=job_id)
        if job.status != Job.Status.SUCCEEDED:
            raise ApplicationError(f"Export {job_id} is {job.status}, not ready.", code="not_ready")

        name = job.result["file"]
        response = FileResponse(
            media_open(name),
            content_type=exports.CONTENT_TYPES[job.params["format"]],
            as_attachment=True,
            filename=name.rsplit("/", 1)[-1],
        )
        response["Cache-Control"] = "private, no-store"
        return response
