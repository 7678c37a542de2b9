import json
import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling.errors import ApplicationError
from labeling.models import ModelVersion, Project
from labeling.services.training import CONFIGS, embed_job_create, pretrain_job_create
from labeling.tasks import embed_task, pretrain_task


class Command(BaseCommand):
    help = (
        "Pretrain an MSN backbone on the project's accepted images, then embed them with it; "
        "it becomes the active backbone and a candidate feature set for the head."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True)
        parser.add_argument("--config", choices=CONFIGS, default="tiny")
        budget = parser.add_mutually_exclusive_group(required=True)
        budget.add_argument("--minutes", type=float, help="Wall-time budget.")
        budget.add_argument("--epochs", type=int)
        budget.add_argument("--steps", type=int)
        parser.add_argument("--workers", type=int, default=None, help="DataLoader worker processes.")
        parser.add_argument(
            "--init-checkpoint",
            default=None,
            help="Start from the weights of a ViT file (Veil's own, a torchvision ViT state "
            "dict or an official MSN checkpoint) instead of a random initialisation.",
        )
        parser.add_argument("--no-embed", action="store_true", help="Do not embed the pool afterwards.")
        parser.add_argument("--json", action="store_true", help="Print one JSON summary on stdout.")

    def handle(self, *args, project, config, minutes, epochs, steps, workers, init_checkpoint, no_embed, **options):
        project_obj = Project.objects.filter(slug=project).first()
        if project_obj is None:
            raise CommandError(f"No project {project!r}.")
        try:
            job = pretrain_job_create(
                project=project_obj,
                config=config,
                minutes=minutes,
                epochs=epochs,
                steps=steps,
                init_checkpoint=init_checkpoint,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        bar = tqdm(total=steps, unit="step", disable=not sys.stderr.isatty(), file=sys.stderr)

        def progress(step, total, loss):
            bar.total = total
            bar.set_postfix(loss=f"{loss:.4f}")
            bar.update(step - bar.n)

        try:
            version_pk = pretrain_task.run_inline(job.pk, progress=progress, num_workers=workers, then_embed=False)
        finally:
            bar.close()
        version = ModelVersion.objects.get(pk=version_pk)
        summary = {
            "project": project_obj.slug,
            "model_version": version.pk,
            "artifact": version.artifact,
            **version.metrics,
            "final_loss": version.loss_curve[-1][1] if version.loss_curve else None,
        }
        if not no_embed:
            summary["embedded"] = embed_task.run_inline(embed_job_create(project=project_obj, model_version=version).pk)
        if options["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            for key, value in summary.items():
                self.stdout.write(f"{key:>14}: {value}")
