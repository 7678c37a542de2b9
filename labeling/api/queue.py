"""API of the moderators' side of the loop: the queue, answers and undo, reveals and their budgets."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import permissions
from labeling.api.serializers import AnnotationOutputSerializer
from labeling.errors import NotFound
from labeling.selectors.projects import membership_get_for_user, project_get_for_user
from labeling.services import queue, wellbeing

MAX_DAILY_REVEALS = 100_000


class LeaseOutputSerializer(serializers.Serializer):
    item_id = serializers.IntegerField()
    image_id = serializers.IntegerField()
    round = serializers.IntegerField()
    is_eval = serializers.BooleanField()
    lease_expires = serializers.DateTimeField()
    resumed = serializers.BooleanField()
    blurred_url = serializers.CharField()
    sketch_url = serializers.CharField()
    original_url = serializers.CharField()
    next_blurred_url = serializers.CharField(allow_null=True, help_text="The likely next item's blurred preview.")
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    text = serializers.CharField(allow_blank=True, help_text="Text read in the image; empty when none was found.")
    progress = serializers.DictField()
    wellbeing = serializers.DictField()


def lease_data(lease: queue.Lease, *, user, membership) -> dict:
    project = membership.project
    image = lease.item.image
    upcoming = lease.upcoming
    if lease.resumed:
        upcoming = queue.queue_peek(user=user, project=project, exclude_item_id=lease.item.pk)
    return {
        "item_id": lease.item.pk,
        "image_id": image.pk,
        "round": lease.item.round.number,
        "is_eval": lease.item.is_eval,
        "lease_expires": lease.assignment.expires,
        "resumed": lease.resumed,
        "blurred_url": reverse("image-file", args=[image.pk, "blurred"]),
        "sketch_url": reverse("image-file", args=[image.pk, "sketch"]),
        "original_url": reverse("image-file", args=[image.pk, "original"]),
        "next_blurred_url": reverse("image-file", args=[upcoming.image_id, "blurred"]) if upcoming else None,
        "width": image.width,
        "height": image.height,
        "text": image.ocr_text,
        **queue.lease_status(user=user, project=project, open_rounds=lease.open_rounds, membership=membership),
    }


class QueueNextApi(APIView):
    @extend_schema(
        request=None, responses={200: LeaseOutputSerializer, 204: OpenApiResponse(description="Nothing left")}
    )
    def post(self, request, slug: str):
        membership = membership_get_for_user(user=request.user, slug=slug)
        lease = queue.queue_next(user=request.user, project=membership.project)
        if lease is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(LeaseOutputSerializer(lease_data(lease, user=request.user, membership=membership)).data)


class QueueStatusOutputSerializer(serializers.Serializer):
    progress = serializers.DictField(
        help_text="The open rounds' items and finished items; your labels, undone ones left out."
    )
    wellbeing = serializers.DictField()


class QueueStatusApi(APIView):
    """The labeling page's counters, polled while it waits and after each answer."""

    @extend_schema(responses={200: QueueStatusOutputSerializer})
    def get(self, request, slug: str):
        membership = membership_get_for_user(user=request.user, slug=slug)
        data = queue.lease_status(user=request.user, project=membership.project, membership=membership)
        return Response(QueueStatusOutputSerializer(data).data)


class SubmitInputSerializer(serializers.Serializer):
    client_key = serializers.CharField(max_length=64)
    kind = serializers.ChoiceField(choices=["label", "skip", "flag"], default="label")
    category = serializers.CharField(max_length=64, required=False, allow_blank=True)
    time_spent_ms = serializers.IntegerField(min_value=0, max_value=24 * 3600 * 1000, default=0)
    revealed = serializers.BooleanField(default=False)
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

    def validate(self, attrs):
        if attrs["kind"] == "label" and not attrs.get("category"):
            raise serializers.ValidationError({"category": "A label needs a category."})
        return attrs


class QueueSubmitApi(APIView):
    @extend_schema(
        request=SubmitInputSerializer, responses={201: AnnotationOutputSerializer, 200: AnnotationOutputSerializer}
    )
    def post(self, request, item_id: int):
        data = SubmitInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        annotation, created = queue.annotation_submit(
            user=request.user,
            item_id=item_id,
            client_key=v["client_key"],
            kind=v["kind"],
            category_key=v.get("category") or None,
            time_spent_ms=v["time_spent_ms"],
            revealed=v["revealed"],
            note=v["note"],
        )
        return Response(
            AnnotationOutputSerializer(annotation).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class UndoInputSerializer(serializers.Serializer):
    client_key = serializers.CharField(max_length=64)


class QueueUndoApi(APIView):
    @extend_schema(
        request=UndoInputSerializer,
        responses={200: AnnotationOutputSerializer, 204: OpenApiResponse(description="Nothing to undo")},
    )
    def post(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug)
        data = UndoInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        retraction = queue.annotation_undo(
            user=request.user, project=project, client_key=data.validated_data["client_key"]
        )
        if retraction is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(AnnotationOutputSerializer(retraction).data)


class RevealFinishInputSerializer(serializers.Serializer):
    duration_ms = serializers.IntegerField(min_value=0)


class RevealFinishApi(APIView):
    @extend_schema(request=RevealFinishInputSerializer, responses={204: None})
    def post(self, request, reveal_id: int):
        data = RevealFinishInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        wellbeing.reveal_finish(user=request.user, reveal_id=reveal_id, duration_ms=data.validated_data["duration_ms"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class RevealBudgetInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    budget = serializers.IntegerField(min_value=0, max_value=MAX_DAILY_REVEALS, allow_null=True)


class RevealBudgetApi(APIView):
    @extend_schema(request=RevealBudgetInputSerializer, responses={204: None})
    def post(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug, rule=permissions.can_manage_project)
        data = RevealBudgetInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = get_user_model().objects.filter(username=data.validated_data["username"]).first()
        if user is None:
            # The same answer as for a user who is not a member, so the site's user names do not leak.
            raise NotFound(f"{data.validated_data['username']} is not a member of {project.slug}.")
        wellbeing.reveal_budget_set(
            actor=request.user, project=project, user=user, budget=data.validated_data["budget"]
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
