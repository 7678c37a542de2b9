"""The learning loop's admin side: rounds, retraining, pretraining, embedding, and the
model versions they produce."""

from __future__ import annotations

import django_filters
from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import permissions
from labeling.api.serializers import JobOutputSerializer
from labeling.models import ModelVersion, Round
from labeling.selectors.projects import project_get_for_user
from labeling.services import rounds, training


class RoundOutputSerializer(serializers.ModelSerializer):
    items = serializers.IntegerField(source="items.count", read_only=True)

    class Meta:
        model = Round
        fields = ["number", "status", "strategy", "head", "metrics", "created", "closed", "items"]


class RoundListApi(generics.ListAPIView):
    serializer_class = RoundOutputSerializer
    queryset = Round.objects.none()  # the schema's model; get_queryset() answers requests

    def get_queryset(self):
        project = project_get_for_user(user=self.request.user, slug=self.kwargs["slug"])
        return Round.objects.filter(project=project).order_by("-number")


class RoundStartApi(APIView):
    @extend_schema(request=None, responses={201: RoundOutputSerializer})
    def post(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug, rule=permissions.can_run_jobs)
        round_ = rounds.round_start(actor=request.user, project=project)
        return Response(RoundOutputSerializer(round_).data, status=status.HTTP_201_CREATED)


class RetrainApi(APIView):
    @extend_schema(request=None, responses={202: JobOutputSerializer})
    def post(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug, rule=permissions.can_run_jobs)
        job = rounds.retrain_job_submit(actor=request.user, project=project, reason="retrain now")
        job.refresh_from_db()
        return Response(JobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class PretrainInputSerializer(serializers.Serializer):
    config = serializers.ChoiceField(choices=training.CONFIGS, default="tiny")
    minutes = serializers.FloatField(min_value=0.1, max_value=24 * 60, required=False)
    epochs = serializers.IntegerField(min_value=1, max_value=100_000, required=False)
    steps = serializers.IntegerField(min_value=1, max_value=100_000_000, required=False)


class PretrainApi(APIView):
    @extend_schema(request=PretrainInputSerializer, responses={202: JobOutputSerializer})
    def post(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug, rule=permissions.can_run_jobs)
        data = PretrainInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = training.pretrain_job_submit(actor=request.user, project=project, **data.validated_data)
        job.refresh_from_db()
        return Response(JobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class EmbedApi(APIView):
    @extend_schema(request=None, responses={202: JobOutputSerializer})
    def post(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug, rule=permissions.can_run_jobs)
        job = training.embed_job_submit(actor=request.user, project=project)
        job.refresh_from_db()
        return Response(JobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ModelVersionSerializer(serializers.ModelSerializer):
    classifier_url = serializers.SerializerMethodField(
        help_text="For a head: its classifier (TorchScript + JSON card, zip) for admins."
    )

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "kind",
            "name",
            "backbone",
            "config",
            "metrics",
            "loss_curve",
            "is_active",
            "created",
            "classifier_url",
        ]

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
