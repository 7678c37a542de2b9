"""Projects and their taxonomies."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import permissions
from labeling.api import serializers as s
from labeling.selectors.projects import project_get_for_user, projects_for_user
from labeling.services.projects import category_add, project_create_by


class ProjectListApi(generics.ListAPIView):
    serializer_class = s.ProjectOutputSerializer

    def get_queryset(self):
        return projects_for_user(user=self.request.user).prefetch_related("categories")

    @extend_schema(request=s.ProjectInputSerializer, responses={201: s.ProjectOutputSerializer})
    def post(self, request):
        permissions.require_staff(request.user)
        data = s.ProjectInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        taxonomy = fields.pop("categories", None)
        project = project_create_by(actor=request.user, taxonomy=taxonomy, **fields)
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
        project = project_get_for_user(user=request.user, slug=slug, rule=permissions.can_manage_project)
        data = s.CategoryInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        category = category_add(actor=request.user, project=project, category=data.validated_data)
        return Response(s.CategorySerializer(category).data, status=status.HTTP_201_CREATED)
