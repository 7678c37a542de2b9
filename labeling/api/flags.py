"""Flags for policy review: the admins' queue of flagged images, and their resolutions."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.models import FlagResolution
from labeling.selectors.flags import flag_queue_for_user, flag_resolutions_for_user
from labeling.selectors.images import image_get_for_user
from labeling.services.flags import MAX_NOTE, flag_resolve
from labeling.services.projects import MAX_GUIDELINE

MAX_LISTED = 500


class FlagOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    user = serializers.CharField()
    created = serializers.DateTimeField()
    note = serializers.CharField(allow_blank=True)


class FlaggedImageOutputSerializer(serializers.Serializer):
    image_id = serializers.IntegerField()
    blurred_url = serializers.CharField()
    label = serializers.CharField(allow_null=True, help_text="The current final label's category key.")
    label_source = serializers.CharField(allow_null=True)
    flags = FlagOutputSerializer(many=True, help_text="The open flags, oldest first.")


class FlagListApi(APIView):
    @extend_schema(responses=FlaggedImageOutputSerializer(many=True))
    def get(self, request, slug: str):
        _, queue = flag_queue_for_user(user=request.user, slug=slug, limit=MAX_LISTED)
        rows = [
            {
                "image_id": row.image_id,
                "blurred_url": reverse("image-file", args=[row.image_id, "blurred"]),
                "label": row.final_label.category.key if row.final_label else None,
                "label_source": row.final_label.source if row.final_label else None,
                "flags": [vars(flag) for flag in row.flags],
            }
            for row in queue
        ]
        return Response(FlaggedImageOutputSerializer(rows, many=True).data)


class FlagResolveInputSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=FlagResolution.Action.choices)
    note = serializers.CharField(max_length=MAX_NOTE, required=False, allow_blank=True, default="")
    category = serializers.CharField(
        max_length=64, required=False, allow_blank=True, help_text="relabel: the new label; guideline: its category."
    )
    guideline = serializers.CharField(
        max_length=MAX_GUIDELINE, required=False, allow_blank=True, help_text="guideline: the new text."
    )


class FlagResolutionOutputSerializer(serializers.ModelSerializer):
    resolved_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    category = serializers.SlugRelatedField(slug_field="key", read_only=True, allow_null=True)

    class Meta:
        model = FlagResolution
        fields = ["id", "image", "flag", "action", "note", "category", "adjudication", "resolved_by", "created"]


class FlagResolutionApi(APIView):
    @extend_schema(responses=FlagResolutionOutputSerializer(many=True))
    def get(self, request, image_id: int):
        history = flag_resolutions_for_user(user=request.user, image_id=image_id)
        return Response(FlagResolutionOutputSerializer(history, many=True).data)

    @extend_schema(request=FlagResolveInputSerializer, responses={201: FlagResolutionOutputSerializer})
    def post(self, request, image_id: int):
        image = image_get_for_user(user=request.user, image_id=image_id)
        data = FlagResolveInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        resolution = flag_resolve(
            actor=request.user,
            image=image,
            action=v["action"],
            note=v["note"],
            category_key=v.get("category") or None,
            guideline=v.get("guideline"),
        )
        return Response(FlagResolutionOutputSerializer(resolution).data, status=status.HTTP_201_CREATED)
