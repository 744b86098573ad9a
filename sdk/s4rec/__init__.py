"""s4rec: score S4Rec sequential recommenders anywhere with ONNX Runtime (no torch, no onnx).

>>> from s4rec import Recommender
>>> rec = Recommender.load("artifact/")
>>> rec.recommend(["item-1", "item-7"], k=10)
"""

from importlib.metadata import PackageNotFoundError, version

from .artifact import ArtifactMetadata
from .errors import ArtifactError, ArtifactVersionError, ChecksumError, S4RecError, UnknownItemError
from .recommender import Recommendations, Recommender

try:
    __version__ = version("s4rec")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"

__all__ = [
    "ArtifactError",
    "ArtifactMetadata",
    "ArtifactVersionError",
    "ChecksumError",
    "Recommendations",
    "Recommender",
    "S4RecError",
    "UnknownItemError",
    "__version__",
]
