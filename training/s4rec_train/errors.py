"""The training package's error for unusable input data, raised by the readers (:mod:`s4rec_train.textformat`,
:mod:`s4rec_train.columnar`) and by the split (:mod:`s4rec_train.data`), which all import it from here.

(The checkpoint's own error, ``CheckpointError``, lives with the checkpoint contract in
:mod:`s4rec_train.checkpoint`.)
"""

from __future__ import annotations

from s4rec.errors import InputError


class DataError(InputError):
    """Input data that cannot be used, with the file, line and what to do."""
