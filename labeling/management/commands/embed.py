import json
import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling.errors import ApplicationError
from labeling.models import Project
from labeling.services.training import backbone_register, embed_job_create
from labeling.tasks import embed_task


class Command(BaseCommand):
    help = "Embed every accepted image of a project with its active backbone (or a checkpoint file)."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True)
        parser.add_argument(
            "--checkpoint",
            help="A backbone file on disk: Veil's own, a torchvision ViT state dict, or an official "
            "MSN checkpoint (target_encoder). It becomes the project's active backbone.",
        )
        parser.add_argument("--num-heads", type=int, default=None, help="Attention heads of a foreign checkpoint.")
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, project, checkpoint, num_heads, batch_size, **options):
        project_obj = Project.objects.filter(slug=project).first()
        if project_obj is None:
            raise CommandError(f"No project {project!r}.")
        try:
            version = (
                backbone_register(project=project_obj, path=checkpoint, num_heads=num_heads) if checkpoint else None
            )
            job = embed_job_create(project=project_obj, model_version=version)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        bar = tqdm(unit="image", disable=not sys.stderr.isatty(), file=sys.stderr)

        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)

        try:
            written = embed_task.run_inline(job.pk, batch_size=batch_size, progress=progress)
        finally:
            bar.close()
        summary = {"project": project_obj.slug, "model_version": job.params["model_version"], "embedded": written}
        self.stdout.write(json.dumps(summary) if options["json"] else f"Embedded {written} images.")
