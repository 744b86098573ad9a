"""Known values on a committed micro model: refactors that change the math (model, export or SDK) fail here.

The fixture (tests/fixtures/known) is made by its make.py; regenerate it only for an intended change.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from s4rec import Recommender

KNOWN = Path(__file__).parent / "fixtures" / "known"
VALUES = json.loads((KNOWN / "values.json").read_text())


def check_against_known(rec: Recommender) -> None:
    histories = VALUES["histories"]
    for history, want in zip(histories, VALUES["recommend"]):
        got = rec.recommend(history, k=5, exclude_seen=False)
        assert got.item_ids() == [item for item, _ in want], history
        assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-5), history
    for history, want in zip(histories, VALUES["embed"]):
        assert np.allclose(rec.embed(history), want, atol=1e-5), history
    for history, want in zip(histories, VALUES["intents"]):
        got = rec.intents(history, top=3)
        assert [i for i, _ in got] == [i for i, _ in want], history
        assert np.allclose([p for _, p in got], [p for _, p in want], atol=1e-5), history
    assert rec.recommend([], k=3).item_ids() == VALUES["popular"]


def test_committed_artifact_gives_known_values():
    check_against_known(Recommender.load(KNOWN / "artifact"))


def test_committed_format_3_artifact_gives_known_values():
    """The format 3 export of the same checkpoint (sidecar files, external item table; the JavaScript SDK's
    tests read it too) gives the same values."""
    rec = Recommender.load(KNOWN / "artifact-large", verify="full")
    assert rec.metadata.format_version == 3
    check_against_known(rec)


def test_export_of_committed_checkpoint_gives_known_values(tmp_path):
    pytest.importorskip("torch", reason="the export half of this check needs the [export] extra")
    from s4rec_export import export_checkpoint

    export_checkpoint(KNOWN / "model.pt", tmp_path / "artifact", top_k=8)
    check_against_known(Recommender.load(tmp_path / "artifact"))


def test_torch_encoder_gives_known_embeddings():
    pytest.importorskip("torch", reason="needs the [train] extra")
    import torch

    from s4rec_train.checkpoint import load_checkpoint, model_from_checkpoint

    model = model_from_checkpoint(load_checkpoint(KNOWN / "model.pt"))
    for history, want in zip(VALUES["histories"], VALUES["embed"]):
        window = torch.zeros((1, model.config.max_len), dtype=torch.int64)
        recent = history[-model.config.max_len :]
        if recent:
            window[0, -len(recent) :] = torch.tensor(recent)
        with torch.no_grad():
            assert np.allclose(model.user_embedding(window)[0].numpy(), want, atol=1e-5), history


@pytest.mark.parametrize("artifact", ["artifact", "artifact-large"])
def test_committed_artifacts_give_known_values_of_the_item_calls(artifact):
    """Issue 23's calls on the committed artifacts (the JavaScript SDK's parity tests read the same values)."""
    rec = Recommender.load(KNOWN / artifact)
    assert rec.version == VALUES["version"] or artifact == "artifact-large"  # format 3: another graph
    assert list(rec.metadata.item_intents) == VALUES["item_intents"]
    histories = VALUES["histories"]

    def same(got, want):
        assert [i for i, _ in got] == [i for i, _ in want]
        assert np.allclose(
            [s for _, s in got], [np.nan if s is None else s for _, s in want], atol=1e-5, equal_nan=True
        )

    for history, want in zip(histories, VALUES["candidates"]):
        same(rec.recommend(history, k=4, candidates=[2, 5, 7, 8, 9, 11, 99]), want)
    for history, want in zip(histories, VALUES["score"]):
        assert np.allclose(rec.score(history, [1, 5, 12, 5]), want, atol=1e-5)
    for query, want in zip([3, [1, 12]], VALUES["similar"]):
        same(rec.similar_items(query, k=4), want)
    for history, want in zip(histories, VALUES["per_intent"]):
        same(rec.recommend(history, k=4, per_intent=1), want)
