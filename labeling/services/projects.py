"""Projects, their taxonomies and their members."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from labeling import permissions
from labeling.errors import ApplicationError
from labeling.models import DEFAULT_TAXONOMY, Category, Membership, Project
from ml.quality import QualityConfig


@transaction.atomic
def project_create(
    *,
    slug: str,
    name: str = "",
    taxonomy: Iterable[Mapping] | None = None,
    quality: Mapping | None = None,
    **fields,
) -> Project:
    """Create a project with its categories (the default taxonomy unless one is given).

    Categories are dicts with ``key`` and optionally ``name``, ``guideline``,
    ``sensitive``, ``hotkey``; hotkeys default to 1..9 in order. Reading the text in
    images (``ocr``) is on by default for the default taxonomy, whose hateful memes
    carry their offence mostly in their captions.
    """
    if Project.objects.filter(slug=slug).exists():
        raise ApplicationError(f"Project {slug!r} already exists.", code="project_exists")
    try:
        quality_dict = QualityConfig.from_dict(dict(quality or {})).to_dict()
    except (TypeError, ValueError) as exc:
        raise ApplicationError(f"Invalid quality settings: {exc}", code="invalid_quality") from exc
    fields.setdefault("ocr", taxonomy is None)
    project = Project(slug=slug, name=name or slug, quality=quality_dict, **fields)
    _full_clean(project)
    project.save()
    categories_set(project=project, taxonomy=DEFAULT_TAXONOMY if taxonomy is None else taxonomy)
    return project


@transaction.atomic
def project_create_by(*, actor, taxonomy: Iterable[Mapping] | None = None, **fields) -> Project:
    """A member of the site's staff creates a project and becomes its admin."""
    permissions.require_staff(actor)
    project = project_create(taxonomy=taxonomy, **fields)
    membership_set(project=project, user=actor, role=Membership.Role.ADMIN)
    return project


def project_get_or_create(*, slug: str, taxonomy: Iterable[Mapping] | None = None) -> tuple[Project, bool]:
    project = Project.objects.filter(slug=slug).first()
    if project is not None:
        return project, False
    return project_create(slug=slug, taxonomy=taxonomy), True


@transaction.atomic
def categories_set(*, project: Project, taxonomy: Iterable[Mapping]) -> list[Category]:
    """Add the given categories to a project, in order, validating each."""
    existing = project.categories.count()
    created = []
    for offset, spec in enumerate(taxonomy):
        order = existing + offset
        hotkey = spec.get("hotkey", str(order + 1) if order < 9 else "")
        category = Category(
            project=project,
            key=spec["key"],
            name=spec.get("name") or spec["key"].replace("_", " ").capitalize(),
            guideline=spec.get("guideline", ""),
            sensitive=bool(spec.get("sensitive", False)),
            hotkey=hotkey,
            order=order,
        )
        _full_clean(category, what=f"category {spec.get('key')!r}")
        category.save()
        created.append(category)
    return created


@transaction.atomic
def category_add(*, actor, project: Project, category: Mapping) -> Category:
    """An admin of the project adds one category (see :func:`categories_set`)."""
    permissions.require(permissions.can_manage_project, user=actor, project=project)
    if project.categories.filter(key=category["key"]).exists():
        raise ApplicationError(f"Category {category['key']!r} exists.", code="category_exists", extra={"field": "key"})
    (added,) = categories_set(project=project, taxonomy=[category])
    return added


MAX_GUIDELINE = 5000


@transaction.atomic
def category_guideline_set(*, actor, category: Category, guideline: str) -> Category:
    """An admin of the project rewrites a category's guideline, the text moderators read."""
    permissions.require(permissions.can_manage_project, user=actor, project=category.project)
    guideline = str(guideline).replace("\x00", "").strip()
    if not guideline:
        raise ApplicationError("Write the new guideline: guideline is required.", extra={"field": "guideline"})
    if len(guideline) > MAX_GUIDELINE:
        raise ApplicationError(f"guideline is longer than {MAX_GUIDELINE} characters.", extra={"field": "guideline"})
    category.guideline = guideline
    category.save(update_fields=["guideline"])
    return category


def membership_set(*, project: Project, user: AbstractBaseUser, role: str) -> Membership:
    if role not in Membership.Role.values:
        raise ApplicationError(f"Unknown role {role!r}.", code="invalid_role", extra={"field": "role"})
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


def _full_clean(instance, *, what: str = "") -> None:
    try:
        instance.full_clean()
    except ValidationError as exc:
        fields = exc.message_dict
        label = what or instance._meta.verbose_name
        detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items())
        raise ApplicationError(f"Invalid {label}: {detail}", code="invalid", extra={"fields": fields}) from exc
