"""The one place where database rows become arrays for ``ml`` and back."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from django.core.files.storage import default_storage

from labeling.models import Embedding, Image, ModelVersion


class StoredImages(Sequence):
    """Original files of images as inputs for ``ml``: local paths when the storage has
    them, else the bytes, read lazily one item at a time."""

    def __init__(self, names: Sequence[str]):
        self.names = list(names)
        try:
            default_storage.path(self.names[0] if self.names else "x")
            self._local = True
        except NotImplementedError:
            self._local = False

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        name = self.names[index]
        if self._local:
            return default_storage.path(name)
        with default_storage.open(name, "rb") as handle:
            return handle.read()


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def embeddings_matrix(
    *, model_version: ModelVersion, image_ids: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, X)``: image ids (n,) int64 and their embeddings (n, d) float32, by id."""
    rows = Embedding.objects.filter(model_version=model_version)
    if image_ids is not None:
        rows = rows.filter(image_id__in=list(image_ids))
    ids, chunks = [], []
    for image_id, vector in rows.order_by("image_id").values_list("image_id", "vector").iterator(chunk_size=5000):
        ids.append(image_id)
        chunks.append(bytes(vector))
    if not ids:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    X = np.frombuffer(b"".join(chunks), dtype="<f4").reshape(len(ids), -1)
    return np.asarray(ids, dtype=np.int64), X


def accepted_images(project_id: int):
    return Image.objects.filter(project_id=project_id, status=Image.Status.ACCEPTED).order_by("id")
