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
    backbone = ModelVersion.objects.create(project=project, kind=ModelVersion.Kind.BACKBONE, is_active=True,
                                           config={"image_size": 64})
    images = ImageFactory.create_batch(len(vectors), project=project, **image_fields)
    Embedding.objects.bulk_create(
        Embedding(image=image, model_version=backbone, vector=vector_to_bytes(v / np.linalg.norm(v)))
        for image, v in zip(images, vectors, strict=True)
    )
    return backbone, images
