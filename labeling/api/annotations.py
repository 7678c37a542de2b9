"""Annotations: every answer of the project for admins, their own for moderators; corrections."""

from __future__ import annotations

from datetime import UTC

import django_filters
from django import forms
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.api.serializers import AnnotationOutputSerializer, CorrectionInputSerializer
from labeling.models import Annotation
from labeling.selectors.annotations import annotations_for_user
from labeling.selectors.projects import project_get_for_user
from labeling.services.corrections import annotation_correct


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
        return annotations_for_user(user=self.request.user, project=project)


class AnnotationCorrectApi(APIView):
    """Correct a past label: a new label that supersedes it (yours as a moderator, anyone's as an admin)."""

    @extend_schema(
        request=CorrectionInputSerializer,
        responses={201: AnnotationOutputSerializer, 200: AnnotationOutputSerializer},
    )
    def post(self, request, annotation_id: int):
        data = CorrectionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        correction, created = annotation_correct(
            actor=request.user,
            annotation_id=annotation_id,
            category_key=data.validated_data["category"],
            client_key=data.validated_data["client_key"],
        )
        return Response(
            AnnotationOutputSerializer(correction).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
