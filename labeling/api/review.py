"""API for admins' review and for getting labeled sets out: reports, adjudication, gold
items, exports; plus the read-only resources (annotations, model versions, categories)."""

from __future__ import annotations

from datetime import UTC

import django_filters
from django import forms
from django.db import transaction
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.api.queue import AnnotationOutputSerializer
from labeling.api.serializers import (
    CategoryInputSerializer,
    CategorySerializer,
    JobOutputSerializer,
)
from labeling.errors import ApplicationError, NotFound
from labeling.models import Adjudication, Annotation, Job, ModelVersion
from labeling.selectors import reports
from labeling.selectors.images import image_get_for_user
from labeling.selectors.projects import project_get_for_user, project_role
from labeling.services import adjudication, exports
from labeling.services.projects import categories_set

DIRECT_EXPORT_LIMIT = 5000
MAX_REPORT_ROWS = 1_000_000


def _report_format(request) -> str:
    fmt = request.query_params.get("format") or "json"
    if fmt not in ("json", "csv"):
        raise ApplicationError(f"format must be json or csv, not {_shown(fmt)}.", extra={"field": "format"})
    return fmt


def _csv_or_json(request, rows: list[dict], filename: str):
    if _report_format(request) == "csv":
        response = HttpResponse(reports.rows_to_csv(rows), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
        return response
    return Response(rows)


class DisagreementRowSerializer(serializers.Serializer):
    image_id = serializers.IntegerField()
    annotators = serializers.IntegerField()
    agreement = serializers.FloatField()
    entropy = serializers.FloatField()
    majority = serializers.CharField()
    votes = serializers.DictField(child=serializers.IntegerField())
    adjudicated = serializers.CharField(allow_null=True)


class ModelDisagreementRowSerializer(serializers.Serializer):
    image_id = serializers.IntegerField()
    given = serializers.CharField()
    predicted = serializers.CharField()
    confidence = serializers.FloatField()
    margin = serializers.FloatField()
    adjudicated = serializers.CharField(allow_null=True)


def _rows_or_csv(rows: type[serializers.Serializer]) -> dict:
    return {(200, "application/json"): rows(many=True), (200, "text/csv"): OpenApiTypes.STR}


REPORT_PARAMETERS = [
    OpenApiParameter("format", str, enum=["json", "csv"]),
    OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": MAX_REPORT_ROWS},
                     description="At most this many rows."),
]


class AgreementReportApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug, admin=True)
        return Response(reports.agreement_report(project=project))


class DisagreementsApi(APIView):
    @extend_schema(parameters=REPORT_PARAMETERS, responses=_rows_or_csv(DisagreementRowSerializer))
    def get(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug, admin=True)
        _report_format(request)
        rows = reports.annotator_disagreements(project=project, limit=_limit(request))
        return _csv_or_json(request, rows, f"{slug}-disagreements")


class ModelDisagreementsApi(APIView):
    @extend_schema(
        parameters=[*REPORT_PARAMETERS,
                    OpenApiParameter("threshold", {"type": "number", "minimum": 0, "maximum": 1})],
        responses=_rows_or_csv(ModelDisagreementRowSerializer),
    )
    def get(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug, admin=True)
        _report_format(request)
        threshold = _float(request.query_params.get("threshold", "0"), "threshold", 0.0, 1.0)
        rows = reports.model_disagreements(project=project, limit=_limit(request), threshold=threshold)
        return _csv_or_json(request, rows, f"{slug}-model-disagreements")


def _limit(request) -> int | None:
    raw = request.query_params.get("limit")
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApplicationError(f"limit must be a whole number, not {_shown(raw)}.",
                               extra={"field": "limit"}) from None
    if not 1 <= value <= MAX_REPORT_ROWS:
        raise ApplicationError(f"limit must be between 1 and {MAX_REPORT_ROWS}.", extra={"field": "limit"})
    return value


def _float(raw: str, name: str, low: float, high: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ApplicationError(f"{name} must be a number, not {_shown(raw)}.", extra={"field": name}) from None
    if not low <= value <= high:
        raise ApplicationError(f"{name} must be between {low} and {high}.", extra={"field": name})
    return value


def _shown(raw: str, width: int = 40) -> str:
    """``raw`` quoted for a message, cut short when long."""
    return repr(raw) if len(raw) <= width else repr(raw[:width]) + "..."


class AdjudicationInputSerializer(serializers.Serializer):
    category = serializers.CharField(max_length=64)
    reason = serializers.CharField(max_length=5000)


class AdjudicationOutputSerializer(serializers.ModelSerializer):
    category = serializers.SlugRelatedField(slug_field="key", read_only=True)
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Adjudication
        fields = ["id", "image", "category", "decided_by", "reason", "created"]


class AdjudicationApi(APIView):
    @extend_schema(responses=AdjudicationOutputSerializer(many=True))
    def get(self, request, image_id: int):
        image = image_get_for_user(user=request.user, image_id=image_id)
        project_get_for_user(user=request.user, slug=image.project.slug, admin=True)
        history = Adjudication.objects.filter(image=image).order_by("created", "pk")
        return Response(AdjudicationOutputSerializer(history, many=True).data)

    @extend_schema(request=AdjudicationInputSerializer, responses={201: AdjudicationOutputSerializer})
    def post(self, request, image_id: int):
        image = image_get_for_user(user=request.user, image_id=image_id)
        data = AdjudicationInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        decision = adjudication.adjudicate(actor=request.user, image=image,
                                           category_key=data.validated_data["category"],
                                           reason=data.validated_data["reason"])
        return Response(AdjudicationOutputSerializer(decision).data, status=status.HTTP_201_CREATED)


class GoldInputSerializer(serializers.Serializer):
    category = serializers.CharField(max_length=64, allow_null=True)


class GoldApi(APIView):
    @extend_schema(request=GoldInputSerializer, responses={204: None})
    def post(self, request, image_id: int):
        image = image_get_for_user(user=request.user, image_id=image_id)
        data = GoldInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        adjudication.gold_set(actor=request.user, image=image, category_key=data.validated_data["category"])
        return Response(status=status.HTTP_204_NO_CONTENT)


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
        project = project_get_for_user(user=request.user, slug=slug, admin=True)
        data = ExportInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = exports.export_job_submit(project=project, user=request.user, fmt=data.validated_data["format"],
                                        filters=_filters(data.validated_data))
        job.refresh_from_db()
        return Response(JobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ExportStreamApi(APIView):
    """Stream a small export (JSONL, CSV or Label Studio JSON) straight into the response."""

    @extend_schema(parameters=[ExportInputSerializer], responses={
        (200, exports.CONTENT_TYPES["jsonl"]): OpenApiTypes.STR,
        (200, exports.CONTENT_TYPES["csv"]): OpenApiTypes.STR,
        (200, exports.CONTENT_TYPES["labelstudio"]): OpenApiTypes.ANY,
    })
    def get(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug, admin=True)
        params = {k: (request.query_params.getlist(k) if k in ("categories", "sources") else v)
                  for k, v in request.query_params.items()}
        data = ExportInputSerializer(data=params)
        data.is_valid(raise_exception=True)
        fmt = data.validated_data["format"]
        if fmt in exports.ARCHIVE_FORMATS:
            raise ApplicationError(f"{fmt} exports are archives: start an export job instead.",
                                   extra={"field": "format"})
        filters = exports.ExportFilters.from_dict(project, _filters(data.validated_data))
        count = exports.export_size(project=project, filters=filters)
        if count > DIRECT_EXPORT_LIMIT:
            raise ApplicationError(
                f"{count} images match: more than {DIRECT_EXPORT_LIMIT} are exported by a job.",
                code="too_large", extra={"field": "format", "count": count},
            )
        rows = exports.export_rows(project=project, filters=filters)
        if fmt == "jsonl":
            chunks = exports.jsonl_lines(rows)
        elif fmt == "csv":
            chunks = exports.csv_lines(rows)
        else:
            chunks = exports.labelstudio_chunks(
                rows, image_url=lambda image: request.build_absolute_uri(
                    reverse("image-file", args=[image.pk, "original"])))
        response = StreamingHttpResponse(chunks, content_type=exports.CONTENT_TYPES[fmt])
        response["Content-Disposition"] = f'attachment; filename="{slug}.{exports.EXTENSIONS[fmt]}"'
        return response


class ExportDownloadApi(APIView):
    @extend_schema(responses={
        (200, content_type): OpenApiTypes.ANY if content_type == "application/json" else OpenApiTypes.BINARY
        for content_type in sorted(set(exports.CONTENT_TYPES.values()))
    })
    def get(self, request, job_id: int):
        job = Job.objects.select_related("project").filter(pk=job_id, kind=Job.Kind.EXPORT).first()
        if job is None or project_role(user=request.user, project=job.project) != "admin":
            raise NotFound(f"Export {job_id} not found.")
        if job.status != Job.Status.SUCCEEDED:
            raise ApplicationError(f"Export {job_id} is {job.status}, not ready.", code="not_ready")
        from labeling.services.media import media_open

        name = job.result["file"]
        response = FileResponse(media_open(name), content_type=exports.CONTENT_TYPES[job.params["format"]],
                                as_attachment=True, filename=name.rsplit("/", 1)[-1])
        response["Cache-Control"] = "private, no-store"
        return response


class _IsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 date-time, in UTC. Python accepts offsets PostgreSQL refuses (over 15:59)
    and dates that leave the calendar once converted: both are answered here."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is not None and timezone.is_aware(value):
            try:
                value = value.astimezone(UTC)
            except OverflowError:
                raise forms.ValidationError("Date-time out of range.", code="invalid") from None
        return value


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = _IsoDateTimeField


class WholeNumberFilter(django_filters.Filter):
    field_class = forms.IntegerField


class AnnotationFilter(django_filters.FilterSet):
    user = django_filters.CharFilter(field_name="user__username")
    image = WholeNumberFilter(field_name="image_id")
    round = WholeNumberFilter(field_name="round__number")
    category = django_filters.CharFilter(field_name="category__key")
    created_after = IsoDateTimeFilter(field_name="created", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created", lookup_expr="lte")

    class Meta:
        model = Annotation
        fields = ["kind", "image", "user", "round", "category"]


class AnnotationListApi(generics.ListAPIView):
    """Annotations of the project: all of them for admins, their own for moderators."""

    serializer_class = AnnotationOutputSerializer
    filterset_class = AnnotationFilter
    queryset = Annotation.objects.none()  # the schema's model; get_queryset() answers requests

    def get_queryset(self):
        project = project_get_for_user(user=self.request.user, slug=self.kwargs["slug"])
        rows = Annotation.objects.filter(image__project=project).select_related("user", "category", "round")
        if project_role(user=self.request.user, project=project) != "admin":
            rows = rows.filter(user=self.request.user)
        return rows.order_by("pk")


class ModelVersionSerializer(serializers.ModelSerializer):
    classifier_url = serializers.SerializerMethodField(
        help_text="For a head: its classifier (TorchScript + JSON card, zip) for admins.")

    class Meta:
        model = ModelVersion
        fields = ["id", "kind", "name", "backbone", "config", "metrics", "loss_curve", "is_active", "created",
                  "classifier_url"]

    def get_classifier_url(self, version) -> str | None:
        if version.kind != ModelVersion.Kind.HEAD or not version.artifact:
            return None
        return reverse("api-classifier-download", args=[version.project.slug, version.pk])


@extend_schema_field({"type": "string", "enum": ["true", "false"]})
class TrueFalseFilter(django_filters.ChoiceFilter):
    """``true`` or ``false``; anything else is refused rather than ignored."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, choices=[("true", "true"), ("false", "false")], **kwargs)

    def filter(self, qs, value):
        return qs if value in (None, "") else super().filter(qs, value == "true")


class ModelVersionFilter(django_filters.FilterSet):
    is_active = TrueFalseFilter()

    class Meta:
        model = ModelVersion
        fields = ["kind", "is_active"]


class ModelVersionListApi(generics.ListAPIView):
    serializer_class = ModelVersionSerializer
    filterset_class = ModelVersionFilter
    queryset = ModelVersion.objects.none()  # the schema's model; get_queryset() answers requests

    def get_queryset(self):
        project = project_get_for_user(user=self.request.user, slug=self.kwargs["slug"])
        return ModelVersion.objects.filter(project=project).select_related("project").order_by("-created", "-pk")


class CategoryListApi(APIView):
    @extend_schema(responses=CategorySerializer(many=True))
    def get(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug)
        return Response(CategorySerializer(project.categories.all(), many=True).data)

    @extend_schema(request=CategoryInputSerializer, responses={201: CategorySerializer})
    def post(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug, admin=True)
        data = CategoryInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if project.categories.filter(key=data.validated_data["key"]).exists():
            raise ApplicationError(f"Category {data.validated_data['key']!r} exists.", code="category_exists",
                                   extra={"field": "key"})
        with transaction.atomic():
            (category,) = categories_set(project=project, taxonomy=[data.validated_data])
        return Response(CategorySerializer(category).data, status=status.HTTP_201_CREATED)
