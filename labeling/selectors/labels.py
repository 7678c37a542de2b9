"""Final labels: what Veil holds to be each image's label, and where it came from.

An admin's adjudication wins; else the human consensus (majority of the moderators'
current labels; ties go to the category earlier in the taxonomy); else the head's
auto-accept label; else the import's folder pre-label. Labels retracted by an undo
never count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from django.db.models import Exists, OuterRef, Q

from labeling import permissions
from labeling.models import Adjudication, Annotation, Category, Image, Project


class LabelSource:
    ADJUDICATED = "adjudicated"
    CONSENSUS = "consensus"
    MODEL = "model"
    IMPORT = "import"
    ALL = (ADJUDICATED, CONSENSUS, MODEL, IMPORT)
    HUMAN = (ADJUDICATED, CONSENSUS)


# Images whose final labels are decided together: one read of their annotations each.
CHUNK = 2000


@dataclass(frozen=True)
class FinalLabel:
    category: Category
    source: str
    agreement: float | None
    annotators: int
    votes: dict[str, int]

    @property
    def human(self) -> bool:
        """Whether a person decided this label (an adjudication or the moderators' consensus)."""
        return self.source in LabelSource.HUMAN


def current_votes(image_ids: Iterable[int] | None = None, *, annotations=None) -> dict[int, dict[int, int]]:
    """``{image_id: {user_id: category_id}}``: each moderator's current label.

    Reads the annotations of ``image_ids``, or the given ``annotations`` queryset. A label
    retracted by an undo does not count; nor does one superseded by a correction: the
    correction (a label that supersedes another) counts in its place, as the vote of the
    moderator whose label it corrected, whoever recorded it, so a correction changes the
    vote and never adds one. A moderator's later label replaces their earlier one.
    """
    if annotations is None:
        annotations = Annotation.objects.filter(image_id__in=list(image_ids))
    rows = list(
        annotations.order_by("pk").values_list("pk", "image_id", "user_id", "kind", "category_id", "supersedes_id")
    )
    superseded = {sup for _, _, _, kind, _, sup in rows if sup is not None and kind in SUPERSEDING}
    voter: dict[int, int] = {}
    votes: dict[int, dict[int, int]] = {}
    for pk, image_id, user_id, kind, category_id, sup in rows:
        if kind != Annotation.Kind.LABEL:
            continue
        voter[pk] = voter.get(sup, user_id) if sup is not None else user_id
        if pk not in superseded:
            votes.setdefault(image_id, {})[voter[pk]] = category_id
    return votes


SUPERSEDING = (Annotation.Kind.RETRACT, Annotation.Kind.LABEL)
"""Kinds of annotation whose ``supersedes`` takes the superseded label out of the votes: an
undo (retract) and a correction (a label)."""


def current_label_annotations():
    """Labels that count as a vote: neither retracted nor corrected (see :func:`current_votes`)."""
    return Annotation.objects.filter(kind=Annotation.Kind.LABEL).exclude(superseded_by__kind__in=SUPERSEDING)


@dataclass(frozen=True)
class LabelInputs:
    """What decides an image's final label besides its annotations."""

    pk: int
    model_label_id: int | None
    source_label_id: int | None


def final_labels(
    *, project: Project, images: Iterable[Image | LabelInputs], pk_range: tuple[int, int] | None = None
) -> dict[int, FinalLabel]:
    """Final labels of ``images``. With ``pk_range`` (the smallest and largest image id
    of a contiguous chunk of the project's images), annotations and adjudications are read
    by id range rather than by a list of ids."""
    images = list(images)
    categories = {c.pk: c for c in project.categories.all()}
    order = {pk: c.order for pk, c in categories.items()}
    if pk_range is not None:
        low, high = pk_range
        votes = current_votes(
            annotations=Annotation.objects.filter(image__project=project, image_id__gte=low, image_id__lte=high)
        )
        decisions = Adjudication.objects.filter(image__project=project, image_id__gte=low, image_id__lte=high)
    else:
        ids = [image.pk for image in images]
        votes = current_votes(ids)
        decisions = Adjudication.objects.filter(image_id__in=ids)
    adjudicated: dict[int, int] = dict(
        decisions.order_by("image_id", "created", "pk").values_list("image_id", "category_id")
    )
    result: dict[int, FinalLabel] = {}
    for image in images:
        image_votes = votes.get(image.pk)
        agreement = None
        majority = None
        named: dict[str, int] = {}
        n = 0
        if image_votes:
            counter = Counter(image_votes.values())
            n = len(image_votes)
            named = {categories[c].key: k for c, k in counter.items()}
            majority = max(counter, key=lambda c: (counter[c], -order[c]))
            agreement = counter[majority] / n
        if image.pk in adjudicated:
            chosen, source = adjudicated[image.pk], LabelSource.ADJUDICATED
        elif majority is not None:
            chosen, source = majority, LabelSource.CONSENSUS
        elif image.model_label_id:
            chosen, source = image.model_label_id, LabelSource.MODEL
        elif image.source_label_id:
            chosen, source = image.source_label_id, LabelSource.IMPORT
        else:
            continue
        result[image.pk] = FinalLabel(categories[chosen], source, agreement, n, named)
    return result


def final_labels_walk(
    *, project: Project, images: Iterable[Image | LabelInputs], by_range: bool = False, chunk: int = CHUNK
) -> Iterator[tuple[Image | LabelInputs, FinalLabel | None]]:
    """Each of ``images`` (in id order) with its final label, or None, a chunk at a time.

    With ``by_range`` the images are every image of the project in their id range, so each
    chunk's annotations are read by range rather than by a list of ids.
    """
    rows = iter(images)
    last = 0
    while batch := list(islice(rows, chunk)):
        pk_range = (last + 1, batch[-1].pk) if by_range else None
        labels = final_labels(project=project, images=batch, pk_range=pk_range)
        last = batch[-1].pk
        for image in batch:
            yield image, labels.get(image.pk)


def final_labels_of(*, project: Project, image_ids: Iterable[int]) -> dict[int, FinalLabel]:
    """Final labels of the project's images among ``image_ids``, by image id."""
    inputs = [
        LabelInputs(*values)
        for values in Image.objects.filter(project=project, pk__in=list(image_ids))
        .order_by("pk")
        .values_list("pk", "model_label_id", "source_label_id")
    ]
    return final_labels(project=project, images=inputs)


def final_labels_for_user(*, user, project: Project, image_ids: Iterable[int]) -> dict[int, FinalLabel]:
    """The final labels ``user`` may see. Admins see every final label; moderators label
    independently, so they see only the import's pre-label, never what other moderators
    answered or an admin decided."""
    if permissions.can_review(user, project):
        return final_labels_of(project=project, image_ids=image_ids)
    categories = {c.pk: c for c in project.categories.all()}
    return {
        pk: FinalLabel(categories[label_id], LabelSource.IMPORT, None, 0, {})
        for pk, label_id in Image.objects.filter(
            project=project, pk__in=list(image_ids), source_label__isnull=False
        ).values_list("pk", "source_label_id")
    }


def final_label_counts(*, project: Project) -> dict[str, Counter]:
    """``{source: Counter(category key)}`` over the project's accepted images."""
    inputs = (
        LabelInputs(*values)
        for values in labeled_images(project=project)
        .values_list("pk", "model_label_id", "source_label_id")
        .iterator(chunk_size=CHUNK)
    )
    counts: dict[str, Counter] = {source: Counter() for source in LabelSource.ALL}
    for _, final in final_labels_walk(project=project, images=inputs):
        if final is not None:
            counts[final.source][final.category.key] += 1
    return counts


def human_labeled_images(*, project: Project):
    """The project's images with a label a person decided: a moderator's label that no undo
    retracted, or an adjudication."""
    current = current_label_annotations().filter(image=OuterRef("pk"))
    decided = Adjudication.objects.filter(image=OuterRef("pk"))
    return Image.objects.filter(project=project).filter(Exists(current) | Exists(decided))


def labeled_images(*, project: Project):
    return Image.objects.filter(project=project, status=Image.Status.ACCEPTED).order_by("pk")


def human_labels(*, project: Project) -> dict[int, FinalLabel]:
    """Labels a person decided (adjudicated or consensus), by image id."""
    return training_labels(project=project)


def training_labels(*, project: Project, weak: bool = False) -> dict[int, FinalLabel]:
    """The labels the head learns from, by image id: adjudicated or human consensus.

    Auto-accepted model labels never train the head that made them. With ``weak``, an
    image with neither gets its import pre-label (source ``"import"``): weak labels seed
    the head but are never counted as human labels.
    """
    images = Image.objects.filter(project=project, status=Image.Status.ACCEPTED)
    human = Q(pk__in=human_labeled_images(project=project).values("pk"))
    images = images.filter(human | Q(source_label__isnull=False)) if weak else images.filter(human)
    inputs = [
        LabelInputs(pk, None, source if weak else None)
        for pk, source in images.order_by("pk").values_list("pk", "source_label_id")
    ]
    if not inputs:
        return {}
    # By id range: a list of ids would not fit in one statement for a large pool of weak labels.
    return final_labels(project=project, images=inputs, pk_range=(inputs[0].pk, inputs[-1].pk))
