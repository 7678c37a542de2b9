"""API for the trained classifier: predictions on new files, and the model file with its card."""

from __future__ import annotations

from django.conf import settings
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import permissions
from labeling.errors import ApplicationError
from labeling.models import ModelVersion
from labeling.selectors.projects import model_version_get_for_user, project_get_for_user
from labeling.services import classifier
from labeling.services.media import media_open


class PredictInputSerializer(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField(allow_empty_file=True), allow_empty=False)

    def validate_files(self, files):
        limit = settings.VEIL_PREDICT_MAX_BYTES
        too_big = [f"{f.name}: {f.size} bytes; at most {limit}" for f in files if f.size > limit]
        if too_big:
            raise serializers.ValidationError(too_big)
        return files


class PredictionSerializer(serializers.Serializer):
    file = serializers.CharField()
    category = serializers.CharField(required=False)
    confidence = serializers.FloatField(required=False)
    probabilities = serializers.DictField(child=serializers.FloatField(), required=False)
    text = serializers.CharField(required=False, help_text="Text read from the image, when the head reads text.")
    error = serializers.CharField(required=False, help_text="Why the file could not be read (a reason code).")
    detail = serializers.CharField(required=False)


class PredictOutputSerializer(serializers.Serializer):
    head = serializers.IntegerField()
    feature_set = serializers.CharField()
    classes = serializers.ListField(child=serializers.CharField())
    predictions = PredictionSerializer(many=True)


class PredictApi(APIView):
    """Categories and probabilities of the active head for uploaded image files."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request={"multipart/form-data": PredictInputSerializer}, responses=PredictOutputSerializer)
    def post(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug)
        data = PredictInputSerializer(data={"files": request.FILES.getlist("files")})
        data.is_valid(raise_exception=True)
        files = [classifier.PredictFile(name=f.name, data=f.read()) for f in data.validated_data["files"]]
        return Response(classifier.classifier_predict(project=project, files=files))


def _head(request, slug: str, pk: int) -> ModelVersion:
    return model_version_get_for_user(
        user=request.user, slug=slug, pk=pk, kind=ModelVersion.Kind.HEAD, rule=permissions.can_export
    )


class ClassifierDownloadApi(APIView):
    """The head and its backbones as one TorchScript file, with its JSON card, in a zip."""

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY})
    def get(self, request, slug: str, pk: int):
        name = classifier.classifier_export(head=_head(request, slug, pk))
        response = FileResponse(
            media_open(name), content_type="application/zip", as_attachment=True, filename=f"veil-{slug}-head-{pk}.zip"
        )
        response["Cache-Control"] = "private, no-store"
        return response


class ClassifierCardApi(APIView):
    """The card of a head's exported classifier: taxonomy, backbones, labels, metrics."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str, pk: int):
        head = _head(request, slug, pk)
        if not head.artifact:
            raise ApplicationError(f"Head {pk} has no artifact.", code="not_ready")
        return Response(classifier.classifier_card(head=head))
