"""Feature sets from stored embeddings: candidates, fused matrices, the text part."""

from __future__ import annotations

import numpy as np
import pytest

from labeling.adapters import vector_to_bytes
from labeling.models import Embedding, ModelVersion
from labeling.services import features
from labeling.services.features import FeatureSet, candidate_feature_sets, feature_matrix
from tests.labeling.factories import embedded_pool

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(project):
    rng = np.random.default_rng(0)
    backbone, images = embedded_pool(project, rng.normal(size=(10, 6)))
    text = ModelVersion.objects.create(
        project=project, kind="text", name="minilm-l6", is_active=True, config={"dim": 3}
    )
    # Only the first four images have been read yet.
    Embedding.objects.bulk_create(
        Embedding(image=image, model_version=text, vector=vector_to_bytes(np.eye(3, dtype=np.float32)[i % 3]))
        for i, image in enumerate(images[:4])
    )
    return backbone, text, [image.pk for image in images]


def test_a_fused_matrix_gives_images_not_read_yet_a_zero_text_part(stored):
    backbone, text, pks = stored
    ids, X = feature_matrix(FeatureSet((backbone, text)))
    assert ids.tolist() == pks and X.shape == (10, 9)
    np.testing.assert_allclose(np.linalg.norm(X[:, :6], axis=1), np.sqrt(0.5), rtol=1e-5)
    assert (np.linalg.norm(X[:4, 6:], axis=1) > 0.7).all() and not X[4:, 6:].any()


def test_asking_for_many_ids_reads_everything_and_keeps_the_wanted(stored, monkeypatch):
    backbone, text, pks = stored
    wanted = [pks[1], pks[3], pks[8]]
    by_list = feature_matrix(FeatureSet((backbone, text)), wanted)
    monkeypatch.setattr(features, "MAX_LISTED_IDS", 2)
    by_scan = feature_matrix(FeatureSet((backbone, text)), wanted)
    assert by_list[0].tolist() == by_scan[0].tolist() == wanted
    np.testing.assert_array_equal(by_list[1], by_scan[1])


def test_candidates_need_the_labeled_images_embedded(stored):
    backbone, text, pks = stored
    names = [fs.name for fs in candidate_feature_sets(backbone.project, pks[:4])]
    assert names == [f"vit-{backbone.pk}", f"vit-{backbone.pk}+text"]
    names = [fs.name for fs in candidate_feature_sets(backbone.project, pks)]
    assert names == [f"vit-{backbone.pk}"], "the text model has read too few of the labeled images"
