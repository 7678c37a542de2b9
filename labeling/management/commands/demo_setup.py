import json
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from labeling.models import Image, Job, Membership, Project, Round
from labeling.services.ingest import import_job_create
from labeling.services.projects import membership_set, project_create
from labeling.services.rounds import round_start_initial
from labeling.tasks import import_task

DEMO_DIR = Path(settings.BASE_DIR) / "demo"
ACCOUNTS = (("admin", True), ("moderator", False))


def demo_setup(*, slug: str, write) -> dict[str, str | None]:
    """Create the demo accounts and project and import the demo images, once.

    A second run keeps the accounts, their passwords and the images. Returns each
    account's new password, or None for an account that already existed (its password
    is stored only as a hash, so it cannot be shown again). ``write`` takes each line.
    """
    User = get_user_model()
    credentials: dict[str, str | None] = {}
    with transaction.atomic():
        for username, is_admin in ACCOUNTS:
            user, created = User.objects.get_or_create(username=username)
            credentials[username] = None
            if created:
                credentials[username] = secrets.token_urlsafe(9)
                user.is_staff = user.is_superuser = is_admin
                user.set_password(credentials[username])
                user.save()
        demo = Project.objects.filter(slug=slug).first()
        if demo is None:
            taxonomy = json.loads((DEMO_DIR / "taxonomy.json").read_text())
            demo = project_create(
                slug=slug,
                name="Demo: clothing",
                taxonomy=taxonomy,
                overlap=1,
                batch_size=20,
                description="Bundled CC0 photos in four classes; its own taxonomy.",
            )
        membership_set(project=demo, user=User.objects.get(username="admin"), role=Membership.Role.ADMIN)
        membership_set(project=demo, user=User.objects.get(username="moderator"), role=Membership.Role.MODERATOR)

    images = Image.objects.filter(project=demo).count()
    if images:
        write(f"Project {demo.slug!r} already has its {images} images; nothing imported.")
    else:
        job = import_job_create(
            project=demo,
            paths=[str(DEMO_DIR / "images")],
            source="demo",
            labels_from_folders=True,
        )
        # Embedding runs here too, so round 0 is chosen on real embeddings before the server starts.
        summary = import_task.run_inline(job.pk, then="inline")
        counts = ", ".join(f"{k} {v}" for k, v in summary.items() if v)
        write(f"Imported the demo images into project {demo.slug!r}: {counts}.")
        embedded = Job.objects.filter(project=demo, kind=Job.Kind.EMBED, status=Job.Status.SUCCEEDED).first()
        if embedded is not None:
            write(f"Embedded them with the pretrained {embedded.params.get('model')} backbone.")
    if not Round.objects.filter(project=demo).exists():
        round_start_initial(project=demo)
    round_ = Round.objects.filter(project=demo).order_by("number").last()
    write(
        f"Round {round_.number} is open with {round_.items.count()} images to label "
        f"({round_.get_strategy_display().lower()} selection)."
    )
    return credentials


def sign_in_lines(credentials: dict[str, str | None], *, url: str = "http://127.0.0.1:8000/") -> list[str]:
    """What tells a person how to sign in to the demo."""
    lines = [
        f"Sign in at {url} with:",
        "(the moderator labels at /projects/demo/label/; the admin steers at /projects/demo/dashboard/)",
    ]
    for username, password in credentials.items():
        if password is None:
            lines.append(
                f"  {username:<10} password: unchanged since it was first printed (only its hash is stored); "
                f"`python manage.py changepassword {username}` sets a new one"
            )
        else:
            lines.append(f"  {username:<10} password: {password}")
    return lines


class Command(BaseCommand):
    help = (
        "Create the demo accounts and the demo project, and import the bundled demo images; "
        "a second run keeps the accounts, their passwords and the images."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", default="demo")

    def handle(self, *args, project, **options):
        credentials = demo_setup(slug=project, write=self.stdout.write)
        self.stdout.write("")
        for line in sign_in_lines(credentials):
            self.stdout.write(line)
        self.stdout.write("")
