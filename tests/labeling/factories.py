"""factory_boy factories for rows tests need without running an import."""

from __future__ import annotations

import factory
import numpy as np

from labeling.adapters import vector_to_bytes
from labeling.models import Embedding, Image, ModelVersion


class ImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Image

    name = factory.Sequence(lambda n: f"img-{n:05d}.jpg")
    sha256 = factory.Sequence(lambda n: f"{n:064x}")
    status = Image.Status.ACCEPTED
    width = 320
    height = 240
    size_bytes = 20_000
    format = "JPEG"
    original = factory.LazyAttribute(lambda o: f"originals/{o.sha256}.jpg")
    thumbnail = factory.LazyAttribute(lambda o: f"thumbnails/{o.sha256}.jpg")
    blurred = factory.LazyAttribute(lambda o: f"blurred/{o.sha256}.jpg")
    sketch = factory.LazyAttribute(lambda o: f"sketches/{o.sha256}.jpg")


def embedded_pool(project, vectors: np.ndarray, **image_fields) -> tuple[ModelVersion, list[Image]]:
    """Accepted images with the given embeddings under a new active backbone."""
    backbone = ModelVersion.objects.create(
        project=project, kind=ModelVersion.Kind.BACKBONE, is_active=True, config={"image_size": 64}
    )
    images = ImageFactory.create_batch(len(vectors), project=project, **image_fields)
    Embedding.objects.bulk_create(
        Embedding(image=image, model_version=backbone, vector=vector_to_bytes(v / np.linalg.norm(v)))
        for image, v in zip(images, vectors, strict=True)
    )
    return backbone, images


CLUSTER_KEYS = ["violence", "drugs", "neutral"]


def clustered_pool(project) -> dict[int, str]:
    """120 embedded images in three well-separated clusters, one per key of
    ``CLUSTER_KEYS``, with the project set for small combined rounds (overlap 1, batches
    of 12, a quarter held out for evaluation, no gold). Returns image id -> true key."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 16)) * 4
    truth = np.repeat(np.arange(3), 40)
    vectors = centers[truth] + rng.normal(size=(120, 16))
    project.overlap, project.batch_size, project.strategy = 1, 12, "combined"
    project.eval_fraction, project.gold_rate = 0.25, 0.0
    project.save()
    _, images = embedded_pool(project, vectors)
    return {image.pk: CLUSTER_KEYS[t] for image, t in zip(images, truth, strict=True)}
