"""REST API views: parse input, call one service or selector, shape the output."""

from __future__ import annotations

import django_filters
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.api import serializers as s
from labeling.errors import NotFound
from labeling.models import Image, Job
from labeling.selectors.images import (
    class_balance,
    image_get_for_user,
    images_of_project,
    import_summary,
)
from labeling.selectors.labels import final_labels_for_user
from labeling.selectors.projects import project_get_for_user, project_role, projects_for_user
from labeling.services.ingest import import_job_submit
from labeling.services.projects import membership_set, project_create
from ml.quality import QualityConfig


class ProjectListApi(generics.ListAPIView):
    serializer_class = s.ProjectOutputSerializer

    def get_queryset(self):
        return projects_for_user(user=self.request.user).prefetch_related("categories")

    @extend_schema(request=s.ProjectInputSerializer, responses={201: s.ProjectOutputSerializer})
    def post(self, request):
        if not request.user.is_staff:
            from labeling.errors import Forbidden

            raise Forbidden("Only staff may create projects.", code="staff_only")
        data = s.ProjectInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        taxonomy = fields.pop("categories", None)
        with transaction.atomic():
            project = project_create(taxonomy=taxonomy, **fields)
            membership_set(project=project, user=request.user, role="admin")
        return Response(s.ProjectOutputSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    @extend_schema(responses=s.ProjectOutputSerializer)
    def get(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug)
        return Response(s.ProjectOutputSerializer(project).data)


class ImageFilter(django_filters.FilterSet):
    category = django_filters.CharFilter(field_name="source_label__key", label="Pre-label key")
    text = django_filters.CharFilter(field_name="ocr_text", lookup_expr="icontains",
                                     label="Text read from the image contains")

    class Meta:
        model = Image
        fields = ["status", "reason", "split", "source", "category", "text"]


class ProjectImageListApi(generics.ListAPIView):
    serializer_class = s.ImageOutputSerializer
    filterset_class = ImageFilter
    queryset = Image.objects.none()  # the schema's model; get_queryset() answers requests

    def get_queryset(self):
        project = project_get_for_user(user=self.request.user, slug=self.kwargs["slug"])
        return images_of_project(project=project)

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        project = project_get_for_user(user=request.user, slug=kwargs["slug"])
        labels = final_labels_for_user(user=request.user, project=project, image_ids=[i.pk for i in page])
        data = s.ImageOutputSerializer(page, many=True, context={"labels": labels}).data
        return self.get_paginated_response(data)


class ImageDetailApi(APIView):
    @extend_schema(responses=s.ImageOutputSerializer)
    def get(self, request, image_id: int):
        image = image_get_for_user(user=request.user, image_id=image_id)
        labels = final_labels_for_user(user=request.user, project=image.project, image_ids=[image.pk])
        return Response(s.ImageOutputSerializer(image, context={"labels": labels}).data)


class ImageUploadApi(APIView):
    """Upload images or zip archives; an import job processes them in the background."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request={"multipart/form-data": s.UploadInputSerializer}, responses={202: s.JobOutputSerializer})
    def post(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug, admin=True)
        data = s.UploadInputSerializer(data={
            "files": request.FILES.getlist("files"),
            "source": request.data.get("source", ""),
            "labels_from_folders": request.data.get("labels_from_folders", False),
        }, context={"formats": QualityConfig.from_dict(project.quality).formats})
        data.is_valid(raise_exception=True)
        job = import_job_submit(
            project=project, user=request.user, uploads=data.validated_data["files"],
            source=data.validated_data["source"],
            labels_from_folders=data.validated_data["labels_from_folders"],
        )
        return Response(s.JobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class JobDetailApi(APIView):
    @extend_schema(responses=s.JobOutputSerializer)
    def get(self, request, job_id: int):
        job = Job.objects.select_related("project").filter(pk=job_id).first()
        if job is None or project_role(user=request.user, project=job.project) is None:
            raise NotFound(f"Job {job_id} not found.")
        return Response(s.JobOutputSerializer(job).data)


class ProjectJobListApi(generics.ListAPIView):
    serializer_class = s.JobOutputSerializer
    filterset_fields = ["kind", "status"]
    queryset = Job.objects.none()  # the schema's model; get_queryset() answers requests

    def get_queryset(self):
        project = project_get_for_user(user=self.request.user, slug=self.kwargs["slug"])
        return Job.objects.filter(project=project).select_related("project").order_by("-created")


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
