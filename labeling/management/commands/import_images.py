import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling.models import Job, Round
from labeling.services.ingest import import_job_create
from labeling.services.projects import project_get_or_create
from labeling.tasks import import_task


class Command(BaseCommand):
    help = "Import a folder tree or a .zip of images into a project (created if missing)."

    def add_arguments(self, parser):
        parser.add_argument("path", help="A folder (any depth) or a .zip archive.")
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--source", default="", help="Source name recorded on each image.")
        parser.add_argument(
            "--labels-from-folders",
            action="store_true",
            help="Pre-label an image by the nearest parent folder named after a category key.",
        )
        parser.add_argument(
            "--wait",
            action="store_true",
            help="Embed the imported images here, before returning, instead of queueing the job for a worker.",
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON summary on stdout.")
        parser.add_argument(
            "--workers", type=int, default=2, help="Analysis worker processes (threads where processes cannot start)."
        )

    def handle(self, *args, path, project, source, labels_from_folders, workers, wait, **options):
        as_json = options["json"]
        if not Path(path).exists():
            raise CommandError(f"{path}: no such file or folder")
        project_obj, created = project_get_or_create(slug=project)
        if created and not as_json:
            self.stderr.write(f"Created project {project!r} with the default taxonomy.")
        job = import_job_create(
            project=project_obj,
            paths=[str(Path(path).resolve())],
            source=source,
            labels_from_folders=labels_from_folders,
        )
        bar = tqdm(total=None, unit="file", disable=not sys.stderr.isatty(), file=sys.stderr)

        def progress(done, total, counts):
            bar.total = total
            bar.update(done - bar.n)

        try:
            summary = import_task.run_inline(
                job.pk, workers=workers, progress=progress, then="inline" if wait else "queue"
            )
        finally:
            bar.close()
        result = {"project": project_obj.slug, "job": job.pk, **summary}
        follow = Job.objects.filter(project=project_obj, kind=Job.Kind.EMBED, pk__gt=job.pk).order_by("pk")
        result["embed_jobs"] = [{"job": j.pk, "model": j.params.get("model"), "status": j.status} for j in follow]
        opened = Round.objects.filter(project=project_obj).order_by("number").first()
        result["round"] = opened.number if opened is not None else None
        if as_json:
            self.stdout.write(_dumps(result))
        else:
            for key, value in summary.items():
                if value or key in ("total", "accepted"):
                    self.stdout.write(f"{key:>16}: {value}")
            for follow_job in result["embed_jobs"]:
                where = "done here" if follow_job["status"] == Job.Status.SUCCEEDED else "queued for a worker"
                self.stdout.write(f"embedding job {follow_job['job']} ({follow_job['model']}): {where}")
            if result["round"] is not None:
                self.stdout.write(f"round {result['round']} is open")


def _dumps(obj) -> str:
    return json.dumps(obj, sort_keys=False)
