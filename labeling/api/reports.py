"""Reports: class balance and the import summary for members; agreement and
disagreements, as JSON or CSV, for admins."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import permissions
from labeling.api import serializers as s
from labeling.selectors import reports
from labeling.selectors.images import class_balance, import_summary
from labeling.selectors.projects import project_get_for_user

MAX_REPORT_ROWS = 1_000_000


class ClassBalanceApi(APIView):
    @extend_schema(responses=s.ClassBalanceSerializer)
    def get(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug)
        return Response(class_balance(project=project))


class ImportSummaryApi(APIView):
    @extend_schema(responses=s.ImportSummarySerializer)
    def get(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug)
        return Response(import_summary(project=project))


class ReportQuerySerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=["json", "csv"], default="json")
    limit = s.WholeNumberField(
        min_value=1, max_value=MAX_REPORT_ROWS, required=False, help_text="At most this many rows."
    )


class ModelReportQuerySerializer(ReportQuerySerializer):
    threshold = s.FiniteFloatField(min_value=0.0, max_value=1.0, default=0.0)


def _query(serializer: type[serializers.Serializer], request) -> dict:
    data = serializer(data=request.query_params)
    data.is_valid(raise_exception=True)
    return data.validated_data


def _csv_or_json(query: dict, rows: list[dict], filename: str):
    if query["format"] == "csv":
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


class AgreementReportApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug, rule=permissions.can_review)
        return Response(reports.agreement_report(project=project))


class DisagreementsApi(APIView):
    @extend_schema(parameters=[ReportQuerySerializer], responses=_rows_or_csv(DisagreementRowSerializer))
    def get(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug, rule=permissions.can_review)
        query = _query(ReportQuerySerializer, request)
        rows = reports.annotator_disagreements(project=project, limit=query.get("limit"))
        return _csv_or_json(query, rows, f"{slug}-disagreements")


class ModelDisagreementsApi(APIView):
    @extend_schema(parameters=[ModelReportQuerySerializer], responses=_rows_or_csv(ModelDisagreementRowSerializer))
    def get(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug, rule=permissions.can_review)
        query = _query(ModelReportQuerySerializer, request)
        rows = reports.model_disagreements(project=project, limit=query.get("limit"), threshold=query["threshold"])
        return _csv_or_json(query, rows, f"{slug}-model-disagreements")
