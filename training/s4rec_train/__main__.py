"""``python -m s4rec_train``: the ``s4rec-train`` command, also under torchrun
(``torchrun --nproc-per-node N -m s4rec_train DATA -o model.pt``)."""

from .cli import main

main()
