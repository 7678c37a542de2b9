"""Input and output shapes of the REST API. No logic here: services and selectors decide."""

from __future__ import annotations

import math

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from labeling.models import REASON_CHOICES, Annotation, Category, Image, Job, Project, SelectionStrategy
from labeling.selectors.images import image_metadata
from labeling.selectors.items import AGREEMENTS, LABEL_SOURCES, MAX_PAGE_SIZE, PAGE_SIZE, SORTS, ItemQuery
from labeling.selectors.labels import LabelSource


def shown(raw, width: int = 40) -> str:
    """``raw`` quoted for a message, cut short when long."""
    raw = str(raw)
    return repr(raw) if len(raw) <= width else repr(raw[:width]) + "..."


class WholeNumberField(serializers.IntegerField):
    """An integer; a value that is not one is refused naming it."""

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError:
            raise serializers.ValidationError(f"must be a whole number, not {shown(data)}.", code="invalid") from None


class FiniteFloatField(serializers.FloatField):
    """A number other than NaN or infinity (which no range check would refuse)."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            raise serializers.ValidationError(f"must be a number, not {shown(data)}.", code="invalid")
        return value


class CategorySerializer(serializers.ModelSerializer):
    class Meta:
        model = Category
        fields = ["key", "name", "guideline", "hotkey", "sensitive", "order"]


class ProjectOutputSerializer(serializers.ModelSerializer):
    categories = CategorySerializer(many=True, read_only=True)

    class Meta:
        model = Project
        fields = [
            "slug",
            "name",
            "description",
            "created",
            "overlap",
            "batch_size",
            "strategy",
            "quality",
            "near_duplicate_radius",
            "blur_radius",
            "lease_minutes",
            "eval_fraction",
            "eval_cap",
            "gold_rate",
            "auto_start",
            "ocr",
            "weak_labels",
            "categories",
        ]


class CategoryInputSerializer(serializers.Serializer):
    key = serializers.RegexField(r"^[a-z0-9][a-z0-9_-]*$", max_length=64)
    name = serializers.CharField(max_length=200, required=False)
    guideline = serializers.CharField(required=False, allow_blank=True)
    hotkey = serializers.CharField(max_length=1, required=False, allow_blank=True)
    sensitive = serializers.BooleanField(required=False)


class ProjectInputSerializer(serializers.Serializer):
    slug = serializers.SlugField(max_length=64)
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    overlap = serializers.IntegerField(min_value=1, max_value=10, required=False)
    batch_size = serializers.IntegerField(min_value=1, required=False)
    near_duplicate_radius = serializers.IntegerField(min_value=0, max_value=32, required=False)
    blur_radius = serializers.FloatField(min_value=0, required=False)
    quality = serializers.DictField(required=False)
    strategy = serializers.ChoiceField(choices=SelectionStrategy.choices, required=False)
    eval_fraction = serializers.FloatField(min_value=0.0, max_value=0.5, required=False)
    eval_cap = serializers.IntegerField(min_value=0, required=False)
    gold_rate = serializers.FloatField(min_value=0.0, max_value=0.5, required=False)
    auto_start = serializers.BooleanField(
        required=False, help_text="Embed imports and open round 0 by itself (default true)."
    )
    ocr = serializers.BooleanField(
        required=False, help_text="Read and embed the text in images (default: true for the default taxonomy)."
    )
    weak_labels = serializers.BooleanField(
        required=False, help_text="Folder pre-labels seed the head as weak labels (default false)."
    )
    categories = CategoryInputSerializer(many=True, required=False)


class ImageMetadataSerializer(serializers.Serializer):
    """The seed dataset's per-image record."""

    image_id = serializers.IntegerField()
    category = serializers.CharField(allow_null=True)
    source = serializers.CharField()
    resolution = serializers.CharField()
    file_size = serializers.CharField()
    file_size_bytes = serializers.IntegerField()
    date_collected = serializers.DateTimeField(allow_null=True)
    verified = serializers.BooleanField(help_text="A person decided the label (adjudicated or consensus).")
    label_source = serializers.ChoiceField(
        choices=LabelSource.ALL, allow_null=True, help_text="Where the final label came from."
    )
    quality_score = serializers.FloatField(allow_null=True)


class ImageOutputSerializer(serializers.ModelSerializer):
    source_label = serializers.SlugRelatedField(slug_field="key", read_only=True, allow_null=True)
    metadata = serializers.SerializerMethodField()

    class Meta:
        model = Image
        fields = [
            "id",
            "name",
            "status",
            "reason",
            "detail",
            "sha256",
            "width",
            "height",
            "size_bytes",
            "format",
            "quality_score",
            "split",
            "source",
            "source_label",
            "duplicate_of",
            "duplicate_distance",
            "date_collected",
            "ocr_text",
            "created",
            "metadata",
        ]

    def get_metadata(self, image) -> ImageMetadataSerializer:
        final = self.context.get("labels", {}).get(image.pk)
        return image_metadata(
            image, label=final.category.key if final else None, label_source=final.source if final else None
        )


class JobOutputSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    progress = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "project",
            "kind",
            "status",
            "done",
            "total",
            "progress",
            "counts",
            "result",
            "error",
            "created",
            "started",
            "finished",
        ]


class UploadInputSerializer(serializers.Serializer):
    """Images or zip archives. ``context["formats"]``: the project's image formats.

    Each file gets its own outcome (:func:`labeling.services.ingest.import_job_create`):
    one that cannot be imported at all (empty, neither an image nor a zip archive, an
    unreadable archive, an archive entry whose path leaves the archive) is refused by
    name in the answer's ``refused`` while the others are imported; a request whose
    files are all refused is answered 400, naming each. What is wrong with a picture
    (too small, corrupt, blank...) becomes a rejected image row.
    """

    files = serializers.ListField(child=serializers.FileField(allow_empty_file=True), allow_empty=False)
    source = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    labels_from_folders = serializers.BooleanField(required=False, default=False)


class RefusedFileSerializer(serializers.Serializer):
    name = serializers.CharField()
    reason = serializers.CharField(help_text="The reason code, as on a rejected image row.")
    detail = serializers.CharField()


class UploadOutputSerializer(JobOutputSerializer):
    refused = serializers.SerializerMethodField(help_text="The uploaded files that were not imported, and why.")

    class Meta(JobOutputSerializer.Meta):
        fields = [*JobOutputSerializer.Meta.fields, "refused"]

    @extend_schema_field(RefusedFileSerializer(many=True))
    def get_refused(self, job) -> list[dict]:
        return [
            {"name": issue.name, "reason": issue.reason, "detail": issue.detail} for issue in job.import_issues.all()
        ]


class ClassBalanceRowSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    source_labels = serializers.IntegerField()
    consensus = serializers.IntegerField(help_text="Labels a person decided: adjudicated or consensus.")
    auto_accepted = serializers.IntegerField(help_text="The head's auto-accepted labels.")
    total = serializers.IntegerField(help_text="Final labels, each image counted once.")
    share = serializers.FloatField(help_text="Percent of the largest category's total.")


class ClassBalanceSerializer(serializers.Serializer):
    categories = ClassBalanceRowSerializer(many=True)
    labeled = serializers.IntegerField()
    human_labeled = serializers.IntegerField()
    by_source = serializers.DictField(child=serializers.IntegerField())
    unlabeled = serializers.IntegerField()
    imbalance_ratio = serializers.FloatField(allow_null=True)


class ImportSummarySerializer(serializers.Serializer):
    counts = serializers.DictField(child=serializers.IntegerField())
    total = serializers.IntegerField()
    jobs = serializers.ListField(child=serializers.DictField())


class AnnotationOutputSerializer(serializers.ModelSerializer):
    category = serializers.SlugRelatedField(slug_field="key", read_only=True, allow_null=True)
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)
    round = serializers.IntegerField(source="round.number", allow_null=True, read_only=True)

    class Meta:
        model = Annotation
        fields = [
            "id",
            "image",
            "user",
            "round",
            "kind",
            "category",
            "supersedes",
            "time_spent_ms",
            "revealed",
            "client_key",
            "note",
            "created",
        ]


class ItemQuerySerializer(serializers.Serializer):
    """The item browser's query string (the page and the API's image list read the same one).

    See :mod:`labeling.selectors.items` for what each filter means.
    """

    status = serializers.ChoiceField(choices=Image.Status.choices, required=False, allow_blank=True, default="")
    split = serializers.ChoiceField(choices=Image.Split.choices, required=False, allow_blank=True, default="")
    reason = serializers.ChoiceField(choices=REASON_CHOICES, required=False, allow_blank=True, default="")
    source = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    text = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    round = WholeNumberField(min_value=0, max_value=2**31 - 1, required=False, allow_null=True, default=None)
    label = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    predicted = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    prelabel = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    category = serializers.CharField(
        max_length=64, required=False, allow_blank=True, default="", help_text="The pre-label (same as prelabel)."
    )
    label_source = serializers.ChoiceField(choices=LABEL_SOURCES, required=False, allow_blank=True, default="")
    agreement = serializers.ChoiceField(choices=AGREEMENTS, required=False, allow_blank=True, default="")
    flagged = serializers.BooleanField(required=False, allow_null=True, default=None)
    sort = serializers.ChoiceField(choices=SORTS, required=False, default="id")
    cursor = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    limit = WholeNumberField(min_value=1, max_value=MAX_PAGE_SIZE, required=False, default=PAGE_SIZE)

    def validate(self, attrs):
        if attrs["category"] and attrs["prelabel"] and attrs["category"] != attrs["prelabel"]:
            raise serializers.ValidationError({"category": "category and prelabel both name the pre-label."})
        return attrs

    def to_query(self) -> ItemQuery:
        v = self.validated_data
        return ItemQuery(
            status=v["status"],
            split=v["split"],
            reason=v["reason"],
            source=v["source"],
            text=v["text"],
            round=v["round"],
            label=v["label"],
            predicted=v["predicted"],
            prelabel=v["prelabel"] or v["category"],
            label_source=v["label_source"],
            agreement=v["agreement"],
            flagged=v["flagged"],
            sort=v["sort"],
        )


class ItemPredictionSerializer(serializers.Serializer):
    category = serializers.CharField(source="category.key")
    confidence = serializers.FloatField()
    entropy = serializers.FloatField(allow_null=True)


class CorrectionInputSerializer(serializers.Serializer):
    category = serializers.CharField(max_length=64)
    client_key = serializers.CharField(max_length=64)
