"""What an exported model file says about itself (docs/ARTIFACT.md, ``metadata_props``), built from the
checkpoint and the exported graph.

The format is :class:`s4rec.artifact.ArtifactMetadata` (validated there); this module only gathers the values:
the vocabulary and popularity from the checkpoint (through :mod:`s4rec_train.checkpoint`), the shapes, intents
and ranking from the :class:`~s4rec_export.inference.InferenceGraph`, the opset and IR version from the model.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import onnx

from s4rec import __version__ as package_version
from s4rec.artifact import (
    FORMAT_VERSION,
    INPUTS,
    SMALL_FORMAT_VERSION,
    ArtifactMetadata,
    artifact_version,
    file_sha256,
    items_checksum,
)
from s4rec.windows import PADDING_INDEX
from s4rec_train.checkpoint import checkpoint_metrics, item_ids, item_popularity

from .inference import InferenceGraph

POPULAR_ITEMS = 1000  # stored popularity ranking (at least top_k): the empty-history fallback


def popular_items(checkpoint: dict, graph: InferenceGraph) -> np.ndarray:
    """Item indices by descending popularity (``max(POPULAR_ITEMS, top_k)`` of them, capped at N), int64."""
    counts = item_popularity(checkpoint)
    if counts is not None:
        # most interactions first; ties by index, so the order is reproducible
        return (np.argsort(-counts[1:], kind="stable") + 1)[: max(POPULAR_ITEMS, graph.top_k)].astype(np.int64)
    return np.arange(1, min(graph.config.num_items, max(POPULAR_ITEMS, graph.top_k)) + 1, dtype=np.int64)


def artifact_metadata(
    checkpoint: dict,
    checkpoint_path: Path,
    graph: InferenceGraph,
    model: onnx.ModelProto,
    sidecars: dict | None = None,
    lists: dict | None = None,
) -> ArtifactMetadata:
    """The fp32 model file's metadata: ``checkpoint`` (loaded from ``checkpoint_path``) exported as ``model``.

    Format 2 (the lists in the JSON) unless ``sidecars`` (the format 3 sidecar entries) is given, with
    ``lists``: the item ids, popular items, intent top items and item intents as written to those files.
    ``model`` is the graph as exported, before any metadata: its SHA-256 and the checkpoint's make the version."""
    config = graph.config
    large = sidecars is not None
    if large:
        values = dict(lists)
        values.update(item_ids_sha256="", sidecars=sidecars)
    else:
        ids = item_ids(checkpoint)
        values = dict(
            item_ids=tuple(ids),
            item_ids_sha256=items_checksum(ids),
            popular_items=tuple(int(i) for i in popular_items(checkpoint, graph)),
            intent_top_items=tuple(tuple(row) for row in graph.intent_top_items()),
            item_intents=tuple(graph.item_intents().tolist()),
        )
    checkpoint_sha256 = file_sha256(checkpoint_path)
    graph_sha256 = hashlib.sha256(model.SerializeToString()).hexdigest()
    return ArtifactMetadata(
        format_version=FORMAT_VERSION if large else SMALL_FORMAT_VERSION,
        package_version=package_version,
        variant="fp32",
        opset=_opset(model),
        ir_version=int(model.ir_version),
        max_len=config.max_len,
        padding_index=PADDING_INDEX,
        embedding_dim=config.dim,
        num_items=config.num_items,
        num_intents=graph.num_intents,
        top_k=graph.top_k,
        ranking_block_size=graph.block_size,
        intent_temperature=graph.intent_temperature if graph.num_intents else None,
        intent_normalized=graph.intent_normalized,
        source_checkpoint_sha256=checkpoint_sha256,
        version=artifact_version(checkpoint_sha256, graph_sha256),
        checkpoint_metrics=checkpoint_metrics(checkpoint),
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        inputs=INPUTS,
        outputs=tuple(graph.output_names),
        **values,
    )


def variant_metadata(metadata: ArtifactMetadata, variant: str, model: onnx.ModelProto) -> ArtifactMetadata:
    """The fp32 metadata as the ``variant`` file ``model`` states it (its own variant, opset and IR version)."""
    values = metadata.to_dict()
    values.update(variant=variant, opset=_opset(model), ir_version=int(model.ir_version))
    return ArtifactMetadata.from_dict(values, metadata.lists() if metadata.large else None)


def _opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
