"""s4rec: score S4Rec sequential recommenders anywhere with ONNX Runtime (no torch, no onnx).

>>> from s4rec import Recommender
>>> rec = Recommender.load("artifact/")
>>> rec.recommend(["item-1", "item-7"], k=10)
"""

from .artifact import ArtifactMetadata
from .errors import ArtifactError, ArtifactVersionError, ChecksumError, S4RecError, UnknownItemError
from .recommender import Recommender
from .results import RankedBatch, Recommendations
from .vocabulary import ItemVocabulary


def __getattr__(name: str) -> str:
    # Looked up on first use: scanning the installed distributions costs ~10 ms of every cold start.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("s4rec")
        except PackageNotFoundError:  # running from a source tree without an install
            return "0.0.0+source"
    raise AttributeError(f"module 's4rec' has no attribute {name!r}")


__all__ = [
    "ArtifactError",
    "ArtifactMetadata",
    "ArtifactVersionError",
    "ChecksumError",
    "ItemVocabulary",
    "RankedBatch",
    "Recommendations",
    "Recommender",
    "S4RecError",
    "UnknownItemError",
    "__version__",
]
