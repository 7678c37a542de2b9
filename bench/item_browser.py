"""The item browser over a 200,000-image project, against the project list page.

    python -m bench.item_browser [--images 200000] [--repeat 5] [--database-url postgres://...]

Builds a project by bulk insert in a throw-away database (synthetic rows, no files: the
browser shows URLs of blurred previews): pre-labels, an active head's prediction for
every image, two moderators' labels on one image in ten (one in seven of them
disagreeing), flags and some adjudications. Then, through Django's test client signed in
as the project's admin, times the item browser's first page and a page 1,000 deep
(a keyset cursor jumps there: by id, and by the head's entropy), the first page filtered
by final label, and the project list page, the baseline, in the same run. Each figure is
the median of ``--repeat`` requests after one warm-up (the first page's count, cached
for a minute, is timed cold as well). Prints each with its ratio to the project list
page and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time

from bench import harness

PAGE = 50
DEPTH = 1000


def build_project(n: int):
    from django.contrib.auth import get_user_model

    from labeling.models import Adjudication, Annotation, Image, Membership, ModelVersion, Prediction
    from labeling.services.projects import membership_set, project_create

    rng = random.Random(0)
    project = project_create(slug=f"bench-items-{int(time.time())}", auto_start=False)
    categories = list(project.categories.all())
    users = [get_user_model().objects.create_user(f"bench-{project.pk}-{i}") for i in range(2)]
    admin = get_user_model().objects.create_user(f"bench-{project.pk}-admin")
    for user in users:
        membership_set(project=project, user=user, role=Membership.Role.MODERATOR)
    membership_set(project=project, user=admin, role=Membership.Role.ADMIN)
    head = ModelVersion.objects.create(project=project, kind=ModelVersion.Kind.HEAD, is_active=True)
    for start in range(0, n, 10_000):
        count = min(10_000, n - start)
        images = Image.objects.bulk_create(
            harness.synthetic_image(
                project,
                i,
                split=Image.Split.EVAL if i % 20 == 0 else Image.Split.POOL,
                source_label=categories[i % len(categories)] if i % 3 else None,
                thumbnail=f"thumbnails/{i:06d}.jpg",
                blurred=f"blurred/{i:06d}.jpg",
            )
            for i in range(start, start + count)
        )
        predictions, annotations, decisions = [], [], []
        for image in images:
            proba = [rng.random() for _ in categories]
            total = sum(proba)
            proba = [p / total for p in proba]
            best = max(range(len(proba)), key=proba.__getitem__)
            predictions.append(
                Prediction(
                    image=image,
                    model_version=head,
                    category=categories[best],
                    confidence=proba[best],
                    entropy=-sum(p * math.log(p) for p in proba if p > 0),
                    probabilities={c.key: round(p, 5) for c, p in zip(categories, proba, strict=True)},
                )
            )
            if image.pk % 10 == 0:
                first = categories[image.pk % len(categories)]
                second = first if image.pk % 7 else categories[(image.pk + 1) % len(categories)]
                for user, category in zip(users, (first, second), strict=True):
                    annotations.append(
                        Annotation(image=image, user=user, kind="label", category=category, client_key=f"{image.pk}")
                    )
            if image.pk % 101 == 0:
                annotations.append(Annotation(image=image, user=users[0], kind="flag", client_key=f"f{image.pk}"))
            if image.pk % 997 == 0:
                decisions.append(Adjudication(image=image, category=categories[0], decided_by=admin, reason="bench"))
        Prediction.objects.bulk_create(predictions, batch_size=5000)
        Annotation.objects.bulk_create(annotations, batch_size=5000)
        Adjudication.objects.bulk_create(decisions)
    return project, admin


def timed_get(client, url: str, repeat: int) -> tuple[float, float]:
    """Seconds of the first request (cold) and the median of ``repeat`` more."""
    times = []
    for _ in range(repeat + 1):
        with harness.timed() as timing:
            response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        times.append(timing.wall)
    return times[0], statistics.median(times[1:])


def deep_cursors(project, head, depth: int) -> dict[str, str]:
    """Cursors of the page ``depth`` pages deep, by id and by entropy (descending)."""
    from labeling.models import Image, Prediction

    offset = PAGE * depth - 1
    by_id = Image.objects.filter(project=project).order_by("pk").values_list("pk", flat=True)[offset]
    entropy, pk = (
        Prediction.objects.filter(model_version=head, image__project=project)
        .order_by("-entropy", "-image_id")
        .values_list("entropy", "image_id")[offset]
    )
    return {"id": str(by_id), "entropy": f"{entropy!r}_{pk}"}


def arguments() -> argparse.ArgumentParser:
    parser = harness.parser(__doc__)
    parser.add_argument("--images", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    return parser


def run(args: argparse.Namespace) -> dict:
    from django.test import Client
    from django.urls import reverse

    from labeling.selectors.items import active_head

    with harness.timed() as built:
        project, admin = build_project(args.images)
    print(f"built a project of {args.images:,} images with predictions and labels in {built.wall:.1f} s")
    client = Client()
    client.force_login(admin)
    items = reverse("project-items", args=[project.slug])
    depth = min(DEPTH, args.images // PAGE - 1)
    cursors = deep_cursors(project, active_head(project), depth)
    urls = {
        "project_list": reverse("project-list"),
        "first_page": items,
        "deep_page": f"{items}?cursor={cursors['id']}",
        "first_page_by_entropy": f"{items}?sort=-entropy",
        "deep_page_by_entropy": f"{items}?sort=-entropy&cursor={cursors['entropy']}",
        "first_page_final_label": f"{items}?label=drugs",
    }
    figures: dict = {"images": args.images, "page_size": PAGE, "depth_pages": depth}
    results = {name: timed_get(client, url, args.repeat) for name, url in urls.items()}
    baseline = results["project_list"][1]
    print(f"project list page: {1000 * baseline:7.1f} ms (median of {args.repeat}; the baseline)")
    for name, (cold, warm) in results.items():
        figures[f"{name}_ms"] = round(1000 * warm, 1)
        figures[f"{name}_cold_ms"] = round(1000 * cold, 1)
        if name == "project_list":
            continue
        figures[f"{name}_ratio"] = round(warm / baseline, 2)
        print(
            f"{name.replace('_', ' '):>28}: {1000 * warm:7.1f} ms (first request {1000 * cold:7.1f} ms), "
            f"{warm / baseline:5.2f}x the project list"
        )
    figures["load_average"] = harness.rounded(harness.load_average())
    print(f"load average {figures['load_average']}")
    return figures


def main(argv: list[str] | None = None) -> dict:
    args = harness.parse(arguments(), argv)
    harness.setup_django(args.database_url, name="items")
    return harness.emit(run(args))


if __name__ == "__main__":
    main(sys.argv[1:])
