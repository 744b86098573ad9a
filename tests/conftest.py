"""Shared pytest fixtures."""

from __future__ import annotations

import pytest

# --------------------------------------------------------------------------------------------------------
# Export and SDK fixtures (issues 4 and 5): tiny trained checkpoints and their exported artifacts, built once
# per session (each export takes a few seconds).
# --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """(path, checkpoint dict) of a tiny trained model without intent centroids."""
    from helpers import train_tiny

    path = tmp_path_factory.mktemp("tiny") / "model.pt"
    return path, train_tiny(path)


@pytest.fixture(scope="session")
def intent_checkpoint(tmp_path_factory, tiny_checkpoint):
    """(path, checkpoint dict) of the same model with 5 L2-normalised intent centroids."""
    from helpers import with_intents

    path = tmp_path_factory.mktemp("intents") / "model.pt"
    return path, with_intents(tiny_checkpoint[1], path)


@pytest.fixture(scope="session")
def artifact(tmp_path_factory, intent_checkpoint):
    """(directory, ExportReport): the intent model exported with every variant (int8, fp16, mobile)."""
    from s4rec_export import export_checkpoint

    out = tmp_path_factory.mktemp("artifact") / "artifact"
    report = export_checkpoint(intent_checkpoint[0], out, top_k=20, quantize="int8", fp16=True, mobile=True)
    return out, report


@pytest.fixture(scope="session")
def plain_artifact(tmp_path_factory, tiny_checkpoint):
    """(directory, ExportReport): the model without intents, fp32 only, default top_k (capped at 40 items)."""
    from s4rec_export import export_checkpoint

    out = tmp_path_factory.mktemp("plain") / "artifact"
    return out, export_checkpoint(tiny_checkpoint[0], out)


@pytest.fixture(scope="session")
def large_artifacts(tmp_path_factory):
    """(format 2 directory, format 3 directory) of one tiny model with 2,000 items and intents: format 3 forced,
    with the int8 table and the ANN index (tests/test_large_format.py, tests/test_ray.py)."""
    from helpers import TINY_MODEL, train_tiny, with_intents

    from s4rec_export import export_checkpoint

    directory = tmp_path_factory.mktemp("large")
    checkpoint = with_intents(train_tiny(directory / "plain.pt", model=TINY_MODEL, num_items=2000), directory / "m.pt")
    assert checkpoint["config"]["num_items"] == 2000
    export_checkpoint(directory / "m.pt", directory / "small", top_k=50)
    export_checkpoint(directory / "m.pt", directory / "large", top_k=50, large_format=True, quantize="int8", ann=True)
    return directory / "small", directory / "large"


@pytest.fixture(scope="session")
def mixed_id_artifact(tmp_path_factory, tiny_checkpoint):
    """The tiny model with its item ids rewritten to helpers.MIXED_IDS (ints and non-ASCII strings), fp32."""
    from helpers import MIXED_IDS

    from s4rec_export import export_checkpoint
    from s4rec_train.checkpoint import save_checkpoint

    out = tmp_path_factory.mktemp("mixed-ids")
    save_checkpoint(dict(tiny_checkpoint[1], item_ids=MIXED_IDS), out / "model.pt")
    export_checkpoint(out / "model.pt", out / "artifact", top_k=10)
    return out / "artifact"
