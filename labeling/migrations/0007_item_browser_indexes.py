"""The item browser: each prediction's entropy, and indexes to walk a head's predictions by
confidence or entropy."""

import math

from django.db import migrations, models


def entropy_of(probabilities: dict) -> float:
    return -sum(p * math.log(p) for p in probabilities.values() if p > 0)


def fill_entropy(apps, schema_editor):
    Prediction = apps.get_model("labeling", "Prediction")
    batch = []
    for prediction in Prediction.objects.filter(entropy__isnull=True).only("pk", "probabilities").iterator(2000):
        prediction.entropy = entropy_of(prediction.probabilities or {})
        batch.append(prediction)
        if len(batch) == 2000:
            Prediction.objects.bulk_update(batch, ["entropy"])
            batch = []
    Prediction.objects.bulk_update(batch, ["entropy"])


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0006_flag_resolutions"),
    ]

    operations = [
        migrations.AddField(
            model_name="prediction",
            name="entropy",
            field=models.FloatField(blank=True, help_text="Shannon entropy (nats) of the probabilities.", null=True),
        ),
        migrations.RunPython(fill_entropy, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="prediction",
            index=models.Index(fields=["model_version", "confidence", "image"], name="prediction_confidence_idx"),
        ),
        migrations.AddIndex(
            model_name="prediction",
            index=models.Index(fields=["model_version", "entropy", "image"], name="prediction_entropy_idx"),
        ),
    ]
