"""Images: the project's list, one image, uploads, and an admin's decisions on an image
(adjudication, gold items)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import permissions
from labeling.api import serializers as s
from labeling.models import Adjudication
from labeling.selectors.annotations import adjudications_for_user
from labeling.selectors.images import image_get_for_user
from labeling.selectors.items import items_page
from labeling.selectors.labels import final_labels_for_user
from labeling.selectors.projects import project_get_for_user
from labeling.services import adjudication
from labeling.services.ingest import import_job_submit


class ImageListItemSerializer(s.ImageOutputSerializer):
    prediction = serializers.SerializerMethodField()

    class Meta(s.ImageOutputSerializer.Meta):
        fields = [*s.ImageOutputSerializer.Meta.fields, "prediction"]

    def get_prediction(self, image) -> s.ItemPredictionSerializer(allow_null=True):
        prediction = self.context.get("predictions", {}).get(image.pk)
        return s.ItemPredictionSerializer(prediction).data if prediction is not None else None


class ImagePageSerializer(serializers.Serializer):
    count = serializers.IntegerField(
        allow_null=True,
        help_text="Matching images, up to a minute old; on the first page only, and not with the label or "
        "agreement filters (checked a page at a time).",
    )
    next = serializers.CharField(allow_null=True, help_text="The next page (keyset cursor); null on the last.")
    results = ImageListItemSerializer(many=True)


class ProjectImageListApi(APIView):
    """The project's images, filtered and sorted as the item browser does, a keyset page at a time."""

    @extend_schema(parameters=[s.ItemQuerySerializer], responses=ImagePageSerializer)
    def get(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug)
        params = s.ItemQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        page = items_page(
            user=request.user,
            project=project,
            query=params.to_query(),
            cursor=params.validated_data["cursor"] or None,
            limit=params.validated_data["limit"],
        )
        context = {
            "labels": {row.image.pk: row.label for row in page.rows if row.label},
            "predictions": {row.image.pk: row.prediction for row in page.rows if row.prediction},
        }
        next_url = None
        if page.next_cursor:
            query = request.query_params.copy()
            query["cursor"] = page.next_cursor
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        return Response(
            {
                "count": page.count,
                "next": next_url,
                "results": ImageListItemSerializer([row.image for row in page.rows], many=True, context=context).data,
            }
        )


class ImageDetailApi(APIView):
    @extend_schema(responses=s.ImageOutputSerializer)
    def get(self, request, image_id: int):
        image = image_get_for_user(user=request.user, image_id=image_id)
        labels = final_labels_for_user(user=request.user, project=image.project, image_ids=[image.pk])
        return Response(s.ImageOutputSerializer(image, context={"labels": labels}).data)


class ImageUploadApi(APIView):
    """Upload images or zip archives; an import job processes them in the background."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request={"multipart/form-data": s.UploadInputSerializer}, responses={202: s.UploadOutputSerializer})
    def post(self, request, slug: str):
        project = project_get_for_user(user=request.user, slug=slug, rule=permissions.can_import)
        data = s.UploadInputSerializer(
            data={
                "files": request.FILES.getlist("files"),
                "source": request.data.get("source", ""),
                "labels_from_folders": request.data.get("labels_from_folders", False),
            },
        )
        data.is_valid(raise_exception=True)
        job = import_job_submit(
            actor=request.user,
            project=project,
            uploads=data.validated_data["files"],
            source=data.validated_data["source"],
            labels_from_folders=data.validated_data["labels_from_folders"],
        )
        return Response(s.UploadOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


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
        history = adjudications_for_user(user=request.user, image_id=image_id)
        return Response(AdjudicationOutputSerializer(history, many=True).data)

    @extend_schema(request=AdjudicationInputSerializer, responses={201: AdjudicationOutputSerializer})
    def post(self, request, image_id: int):
        image = image_get_for_user(user=request.user, image_id=image_id)
        data = AdjudicationInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        decision = adjudication.adjudicate(
            actor=request.user,
            image=image,
            category_key=data.validated_data["category"],
            reason=data.validated_data["reason"],
        )
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
