"""s4rec_train: train the S4Rec sequential recommender (a SASRec encoder plus S4Rec's objectives).

Importing this package does not import torch; its modules (``model``, ``train``, ...) do.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("s4rec")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"
