"""Projects and their taxonomies."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.api import serializers as s
from labeling.errors import ApplicationError, Forbidden
from labeling.selectors.projects import project_get_for_user, projects_for_user
from labeling.services.projects import categories_set, membership_set, project_create


class ProjectListApi(generics.ListAPIView):
    serializer_class = s.ProjectOutputSerializer

    def get_queryset(self):
        return projects_for_user(user=self.request.user).prefetch_related("categories")

    @extend_schema(request=s.ProjectInputSerializer, responses={201: s.ProjectOutputSerializer})
    def post(self, request):
        if not request.user.is_staff:
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


class CategoryListApi(APIView):
    @extend_schema(responses=s.CategorySerializer(many=True))
    def get(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug)
        return Response(s.CategorySerializer(project.categories.all(), many=True).data)

    @extend_schema(request=s.CategoryInputSerializer, responses={201: s.CategorySerializer})
    def post(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug, admin=True)
        data = s.CategoryInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if project.categories.filter(key=data.validated_data["key"]).exists():
            raise ApplicationError(f"Category {data.validated_data['key']!r} exists.", code="category_exists",
                                   extra={"field": "key"})
        with transaction.atomic():
            (category,) = categories_set(project=project, taxonomy=[data.validated_data])
        return Response(s.CategorySerializer(category).data, status=status.HTTP_201_CREATED)
