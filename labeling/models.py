"""Veil's data model.

Models hold fields, constraints and small properties; writes go through
``labeling.services`` and reads through ``labeling.selectors``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from ml.outcomes import REASONS
from ml.quality import QualityConfig

DEFAULT_TAXONOMY: tuple[dict, ...] = (
    {
        "key": "violence",
        "name": "Violence",
        "sensitive": True,
        "guideline": "Physical harm to people or animals, gore, fights, threats with injury.",
    },
    {
        "key": "drugs",
        "name": "Drugs",
        "sensitive": False,
        "guideline": "Illegal drugs, drug use or paraphernalia, sale of controlled substances.",
    },
    {"key": "nsfw", "name": "NSFW", "sensitive": True, "guideline": "Nudity or sexual content."},
    {"key": "neutral", "name": "Neutral", "sensitive": False, "guideline": "Nothing that violates the policy."},
    {
        "key": "hateful_memes",
        "name": "Hateful memes",
        "sensitive": True,
        "guideline": "Images or image-text memes attacking people for a protected attribute.",
    },
    {
        "key": "weapons",
        "name": "Weapons",
        "sensitive": False,
        "guideline": "Firearms, knives or other weapons shown as weapons.",
    },
)


def default_quality() -> dict:
    return QualityConfig().to_dict()


class SelectionStrategy(models.TextChoices):
    RANDOM = "random", "Random"
    DIVERSITY = "diversity", "Diversity (k-center greedy)"
    TYPICALITY = "typicality", "Typicality"
    PROTOTYPES = "prototypes", "Cluster prototypes"
    UNCERTAINTY = "uncertainty", "Uncertainty"
    BALANCE = "balance", "Class balance"
    COMBINED = "combined", "Uncertain, kept diverse"


class Project(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    overlap = models.PositiveSmallIntegerField(
        default=2,
        validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text="Independent labels wanted per item.",
    )
    batch_size = models.PositiveIntegerField(
        default=100, validators=[MinValueValidator(1)], help_text="Items selected per round."
    )
    strategy = models.CharField(max_length=20, choices=SelectionStrategy.choices, default=SelectionStrategy.COMBINED)
    quality = models.JSONField(
        default=default_quality, help_text="Ingest quality thresholds (ml.quality.QualityConfig)."
    )
    near_duplicate_radius = models.PositiveSmallIntegerField(
        default=8,
        validators=[MaxValueValidator(32)],
        help_text="Hamming distance between 64-bit pHashes under which an image is a near duplicate.",
    )
    blur_radius = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0)],
        help_text="Blur of the derivative shown before reveal; 0 picks it from the image size.",
    )
    lease_minutes = models.PositiveSmallIntegerField(default=10, validators=[MinValueValidator(1)])
    eval_fraction = models.FloatField(default=0.05, validators=[MinValueValidator(0.0), MaxValueValidator(0.5)])
    eval_cap = models.PositiveIntegerField(default=500)

    auto_accept = models.BooleanField(default=False, help_text="Let the head label pool items it is precise enough on.")
    auto_accept_precision = models.FloatField(
        default=0.95,
        validators=[MinValueValidator(0.5), MaxValueValidator(1.0)],
        help_text="Precision on the evaluation split a category must reach for auto-accept.",
    )
    auto_accept_min_support = models.PositiveIntegerField(
        default=20, help_text="Evaluation items of a category needed before its precision is trusted."
    )
    break_after_minutes = models.PositiveSmallIntegerField(
        default=45, help_text="Suggest a break after this much continuous labeling."
    )
    break_after_sensitive_reveals = models.PositiveSmallIntegerField(
        default=30, help_text="Suggest a break after this many reveals of possibly sensitive images."
    )
    daily_sensitive_reveals = models.PositiveIntegerField(
        default=150, help_text="Default daily budget of reveals of possibly sensitive images per moderator."
    )
    gold_rate = models.FloatField(
        default=0.05,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.5)],
        help_text="Share of queue hand-outs that are gold items, unannounced.",
    )
    auto_start = models.BooleanField(
        default=True,
        help_text="Embed imported images with the default backbone and open round 0 by itself.",
    )
    ocr = models.BooleanField(
        default=False,
        help_text="Read the text inside images (memes) and embed it as a feature the head may use.",
    )
    weak_labels = models.BooleanField(
        default=False,
        help_text="Let import pre-labels (folder names) seed the head as weak labels; "
        "never counted as human labels or in agreement.",
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        MODERATOR = "moderator", "Moderator"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MODERATOR)
    reveal_budget = models.PositiveIntegerField(
        null=True, blank=True, help_text="Daily sensitive reveals; empty means the project default."
    )
    blur_strength = models.PositiveSmallIntegerField(
        default=24, validators=[MaxValueValidator(64)], help_text="Extra CSS blur (px) over the preview."
    )
    greyscale = models.BooleanField(default=False, help_text="Show images in greyscale by default.")
    # The current run of work (answers and reveals without a long pause), kept up to date
    # by each answer and reveal, so that break reminders need no look at the history.
    streak_started = models.DateTimeField(null=True, blank=True, editable=False)
    last_active = models.DateTimeField(null=True, blank=True, editable=False)
    streak_sensitive_reveals = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.role} of {self.project}"


class Category(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="categories")
    key = models.CharField(
        max_length=64,
        validators=[RegexValidator(r"^[a-z0-9][a-z0-9_-]*$", "Use lower-case letters, digits, _ or -.")],
    )
    name = models.CharField(max_length=200)
    guideline = models.TextField(blank=True)
    hotkey = models.CharField(max_length=1, blank=True)
    sensitive = models.BooleanField(default=False)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["project", "order", "key"]
        verbose_name_plural = "categories"
        constraints = [
            models.UniqueConstraint(fields=["project", "key"], name="category_key_unique"),
            models.UniqueConstraint(
                fields=["project", "hotkey"], condition=~Q(hotkey=""), name="category_hotkey_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project.slug}:{self.key}"


class Job(models.Model):
    """A long-running piece of work (import, pretrain, embed, retrain, export) and its progress."""

    class Kind(models.TextChoices):
        IMPORT = "import", "Import"
        PRETRAIN = "pretrain", "Pretrain"
        EMBED = "embed", "Embed"
        RETRAIN = "retrain", "Retrain"
        EXPORT = "export", "Export"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    params = models.JSONField(default=dict, blank=True)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True, help_text="Count per outcome.")
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["project", "kind", "-created"])]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def progress(self) -> float | None:
        if not self.total:
            return 1.0 if self.status == self.Status.SUCCEEDED else None
        return min(1.0, self.done / self.total)


REASON_CHOICES = [(reason.value, reason.label) for reason in REASONS]
"""Why an imported file was not accepted: :class:`ml.outcomes.ImportOutcome` as choices."""


class Image(models.Model):
    class Status(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"
        DUPLICATE = "duplicate", "Duplicate"

    class Split(models.TextChoices):
        POOL = "pool", "Pool"
        EVAL = "eval", "Evaluation"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="images")
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="images")
    name = models.CharField(max_length=1024, help_text="Path of the file inside the imported folder or archive.")
    source = models.CharField(max_length=200, blank=True)
    sha256 = models.CharField(max_length=64, db_index=True)
    phash = models.BigIntegerField(null=True, blank=True, help_text="64-bit pHash, stored signed.")
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    format = models.CharField(max_length=16, blank=True)
    quality_score = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    reason = models.CharField(
        max_length=32, blank=True, choices=REASON_CHOICES, help_text="Outcome code for a file that was not accepted."
    )
    detail = models.CharField(max_length=500, blank=True)
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="duplicates"
    )
    duplicate_distance = models.PositiveSmallIntegerField(null=True, blank=True)
    split = models.CharField(max_length=8, choices=Split.choices, default=Split.POOL)
    source_label = models.ForeignKey(
        Category,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Label implied by the import (folder name), not a human annotation.",
    )
    original = models.CharField(max_length=255, blank=True)
    thumbnail = models.CharField(max_length=255, blank=True)
    blurred = models.CharField(max_length=255, blank=True)
    sketch = models.CharField(max_length=255, blank=True)
    model_label = models.ForeignKey(
        Category,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Label given by the head under auto-accept; never counted as a human label.",
    )
    model_label_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model_label_confidence = models.FloatField(null=True, blank=True)
    is_gold = models.BooleanField(default=False, help_text="A gold item with a known label.")
    gold_label = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    date_collected = models.DateTimeField(null=True, blank=True)
    ocr_text = models.TextField(
        blank=True, help_text="Text read from the image (with the project's text model); empty when none."
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "sha256"],
                condition=Q(status="accepted"),
                name="image_accepted_sha_unique",
            ),
            models.CheckConstraint(
                condition=Q(status="accepted", reason="") | ~Q(status="accepted") & ~Q(reason=""),
                name="image_reason_iff_not_accepted",
            ),
        ]
        indexes = [models.Index(fields=["project", "status", "split"])]

    def __str__(self) -> str:
        return f"{self.project_id}:{self.name}"

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}" if self.width and self.height else ""


class Round(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rounds")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    strategy = models.CharField(max_length=20, choices=SelectionStrategy.choices)
    head = models.ForeignKey("ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="rounds")
    metrics = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    closed = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="round_number_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.project.slug} round {self.number}"


class QueueItem(models.Model):
    """An image put in front of moderators in a round."""

    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="items")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="queue_items")
    priority = models.FloatField(default=0.0, help_text="Higher comes first.")
    is_eval = models.BooleanField(default=False)
    is_gold = models.BooleanField(default=False)
    labels_count = models.PositiveSmallIntegerField(default=0, help_text="Current human labels.")
    done = models.BooleanField(default=False, help_text="Has its overlap of labels, or was skipped by all.")
    skipped = models.BooleanField(
        default=False,
        help_text="Closed without its labels: every moderator who could label it skipped it.",
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["round", "image"], name="queue_item_unique"),
        ]
        indexes = [
            # The queue walks a round's open items in priority order; progress counts
            # the open or the done side of a round, whichever is smaller.
            models.Index(fields=["round", "-priority", "id"], condition=Q(done=False), name="queue_item_open_idx"),
            models.Index(fields=["round"], condition=Q(done=True), name="queue_item_done_idx"),
            models.Index(fields=["round"], condition=Q(done=False, is_gold=True), name="queue_item_gold_idx"),
        ]

    def __str__(self) -> str:
        return f"round {self.round_id} image {self.image_id}"


class Assignment(models.Model):
    """A lease of a queue item to one moderator; it expires and the item returns."""

    item = models.ForeignKey(QueueItem, on_delete=models.CASCADE, related_name="assignments")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    leased = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField()
    completed = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "user"], name="assignment_once_per_user"),
        ]
        indexes = [
            models.Index(fields=["item"], condition=Q(completed__isnull=True), name="assignment_open_idx"),
            models.Index(fields=["user", "completed"]),
        ]

    def __str__(self) -> str:
        return f"item {self.item_id} to user {self.user_id} until {self.expires:%H:%M}"


class Annotation(models.Model):
    """One moderator's answer for one image. Append-only: undo adds a row that supersedes."""

    class Kind(models.TextChoices):
        LABEL = "label", "Label"
        SKIP = "skip", "Skip"
        FLAG = "flag", "Flag for policy review"
        RETRACT = "retract", "Retract (undo)"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="annotations")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations")
    round = models.ForeignKey(Round, null=True, blank=True, on_delete=models.SET_NULL, related_name="annotations")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.LABEL)
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.PROTECT, related_name="annotations")
    supersedes = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="superseded_by"
    )
    time_spent_ms = models.PositiveIntegerField(default=0)
    revealed = models.BooleanField(default=False, help_text="The moderator viewed the original.")
    client_key = models.CharField(max_length=64, help_text="Idempotency key chosen by the client.")
    note = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "client_key"], name="annotation_client_key_unique"),
            models.CheckConstraint(
                condition=Q(kind="label", category__isnull=False) | ~Q(kind="label"),
                name="annotation_label_has_category",
            ),
        ]
        # A moderator's recent answers: their streak, their labels today.
        indexes = [models.Index(fields=["user", "created"], name="annotation_user_created_idx")]

    def __str__(self) -> str:
        return f"{self.kind} of image {self.image_id} by user {self.user_id}"


class Reveal(models.Model):
    """A moderator looked at an original image."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="reveals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reveals")
    created = models.DateTimeField(auto_now_add=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    sensitive = models.BooleanField(default=True, help_text="Counted against the daily budget.")

    class Meta:
        indexes = [models.Index(fields=["user", "created"], name="reveal_user_created_idx")]

    def __str__(self) -> str:
        return f"reveal of image {self.image_id} by user {self.user_id}"


class ModelVersion(models.Model):
    class Kind(models.TextChoices):
        BACKBONE = "backbone", "Image backbone"
        TEXT = "text", "Text embedding"
        HEAD = "head", "Linear head"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    name = models.CharField(
        max_length=64,
        blank=True,
        help_text="Registry name of a backbone (efficientnet-lite0, vit, minilm-l6).",
    )
    backbone = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="heads",
        help_text="For a head: the first backbone of the features it was fitted on.",
    )

    artifact = models.CharField(max_length=255, blank=True)
    config = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    loss_curve = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "kind"], condition=Q(is_active=True), name="one_active_model_per_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project.slug} {self.kind} #{self.pk}"

    @property
    def short_name(self) -> str:
        """A short, stable name for a backbone or text model version, used in feature-set names."""
        if self.kind == self.Kind.TEXT:
            return "text"
        if self.name == "efficientnet-lite0":
            return self.name
        preset = self.config.get("preset")
        return f"msn-{preset}-{self.pk}" if preset else f"{self.name or 'vit'}-{self.pk}"


class Embedding(models.Model):
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="embeddings")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="embeddings")
    vector = models.BinaryField(help_text="float32 little-endian, L2-normalised.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "model_version"], name="embedding_unique"),
        ]

    def __str__(self) -> str:
        return f"embedding of image {self.image_id} by model {self.model_version_id}"


class Prediction(models.Model):
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="predictions")
    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="+")
    confidence = models.FloatField()
    entropy = models.FloatField(null=True, blank=True, help_text="Shannon entropy (nats) of the probabilities.")
    probabilities = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "model_version"], name="prediction_unique"),
        ]
        # The item browser walks a head's predictions by confidence or entropy, keyset by (value, image).
        indexes = [
            models.Index(fields=["model_version", "confidence", "image"], name="prediction_confidence_idx"),
            models.Index(fields=["model_version", "entropy", "image"], name="prediction_entropy_idx"),
        ]

    def __str__(self) -> str:
        return f"prediction for image {self.image_id} by model {self.model_version_id}"


class ImportIssue(models.Model):
    """A file of an import that never became an Image row (unsafe archive path, unreadable)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="import_issues")
    name = models.CharField(max_length=1024)
    reason = models.CharField(max_length=32, choices=REASON_CHOICES)
    detail = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.reason}: {self.name}"


class Adjudication(models.Model):
    """An admin's final label for an image. Append-only: the latest row is in force."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="adjudications")
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["image", "-created", "-pk"]

    def __str__(self) -> str:
        return f"{self.category.key} for image {self.image_id} by user {self.decided_by_id}"


class FlagResolution(models.Model):
    """An admin's answer to an image's flags for policy review. Append-only.

    It resolves every flag of the image up to ``flag`` (the newest one the admin saw); a
    flag raised after it is open again. A relabel records the adjudication it made, a
    guideline change the category whose guideline it rewrote.
    """

    class Action(models.TextChoices):
        RELABEL = "relabel", "Relabel"
        DISMISS = "dismiss", "Dismiss"
        GUIDELINE = "guideline", "Change a guideline"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="flag_resolutions")
    flag = models.ForeignKey(
        Annotation, on_delete=models.CASCADE, related_name="resolutions", help_text="The newest flag it resolves."
    )
    action = models.CharField(max_length=16, choices=Action.choices)
    note = models.TextField(blank=True)
    category = models.ForeignKey(
        Category,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The new label (relabel) or the category whose guideline changed.",
    )
    adjudication = models.ForeignKey(
        Adjudication, null=True, blank=True, on_delete=models.CASCADE, related_name="flag_resolutions"
    )
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["image", "-flag", "-pk"]

    def __str__(self) -> str:
        return f"{self.action} of flags on image {self.image_id} by user {self.resolved_by_id}"
