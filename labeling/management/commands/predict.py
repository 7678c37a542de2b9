import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from labeling.errors import ApplicationError
from labeling.models import Project
from labeling.services.classifier import PredictFile, classifier_predict

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}


class Command(BaseCommand):
    help = "Predict the category of image files with the project's active head (as POST .../predict/ does)."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="Image files, or folders of them (searched recursively).")
        parser.add_argument("--project", required=True)
        parser.add_argument("--json", action="store_true", help="Print the whole answer as one JSON object.")

    def handle(self, *args, paths, project, **options):
        project_obj = Project.objects.filter(slug=project).first()
        if project_obj is None:
            raise CommandError(f"No project {project!r}.")
        files = []
        for path in map(Path, paths):
            if path.is_dir():
                files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            elif path.is_file():
                files.append(path)
            else:
                raise CommandError(f"{path}: no such file or folder")
        if not files:
            raise CommandError("No image files found.")
        predictions, answer = [], None
        batch = settings.VEIL_PREDICT_MAX_FILES
        try:
            for start in range(0, len(files), batch):
                chunk = [PredictFile(name=str(p), data=p.read_bytes()) for p in files[start : start + batch]]
                answer = classifier_predict(project=project_obj, files=chunk)
                predictions += answer["predictions"]
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        answer = {**answer, "predictions": predictions}
        if options["json"]:
            self.stdout.write(json.dumps(answer))
            return
        self.stdout.write(f"head #{answer['head']} on {answer['feature_set']}")
        for row in predictions:
            if "error" in row:
                self.stdout.write(f"{row['file']}: cannot be read ({row['error']}: {row['detail']})")
            else:
                self.stdout.write(f"{row['file']}: {row['category']} ({row['confidence']:.3f})")
