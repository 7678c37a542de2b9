import json
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from labeling.models import Job, Membership, Project, Round
from labeling.services.ingest import import_job_create
from labeling.services.projects import membership_set, project_create
from labeling.services.rounds import round_start_initial
from labeling.tasks import import_task

DEMO_DIR = Path(settings.BASE_DIR) / "demo"


class Command(BaseCommand):
    help = "Create the demo accounts and the demo project, and import the bundled demo images."

    def add_arguments(self, parser):
        parser.add_argument("--project", default="demo")

    def handle(self, *args, project, **options):
        User = get_user_model()
        credentials = {}
        with transaction.atomic():
            for username, is_admin in (("admin", True), ("moderator", False)):
                password = secrets.token_urlsafe(9)
                user, _ = User.objects.get_or_create(username=username)
                user.is_staff = user.is_superuser = is_admin
                user.set_password(password)
                user.save()
                credentials[username] = password
            demo = Project.objects.filter(slug=project).first()
            if demo is None:
                taxonomy = json.loads((DEMO_DIR / "taxonomy.json").read_text())
                demo = project_create(
                    slug=project,
                    name="Demo: clothing",
                    taxonomy=taxonomy,
                    overlap=1,
                    batch_size=20,
                    description="Bundled CC0 photos in four classes; its own taxonomy.",
                )
            membership_set(project=demo, user=User.objects.get(username="admin"), role=Membership.Role.ADMIN)
            membership_set(project=demo, user=User.objects.get(username="moderator"), role=Membership.Role.MODERATOR)

        job = import_job_create(
            project=demo,
            paths=[str(DEMO_DIR / "images")],
            source="demo",
            labels_from_folders=True,
        )
        # Embedding runs here too, so round 0 is chosen on real embeddings before the server starts.
        summary = import_task.run_inline(job.pk, then="inline")
        counts = ", ".join(f"{k} {v}" for k, v in summary.items() if v)
        self.stdout.write(f"Imported the demo images into project {demo.slug!r}: {counts}.")
        embedded = Job.objects.filter(project=demo, kind=Job.Kind.EMBED, status=Job.Status.SUCCEEDED).first()
        if embedded is not None:
            self.stdout.write(f"Embedded them with the pretrained {embedded.params.get('model')} backbone.")
        if not Round.objects.filter(project=demo).exists():
            round_start_initial(project=demo)
        round_ = Round.objects.filter(project=demo).order_by("number").last()
        self.stdout.write(
            f"Round {round_.number} is open with {round_.items.count()} images to label "
            f"({round_.get_strategy_display().lower()} selection)."
        )
        self.stdout.write("")
        self.stdout.write("Sign in at http://127.0.0.1:8000/ with:")
        self.stdout.write(
            "(the moderator labels at /projects/demo/label/; the admin steers at /projects/demo/dashboard/)"
        )
        for username, password in credentials.items():
            self.stdout.write(f"  {username:<10} password: {password}")
        self.stdout.write("")
