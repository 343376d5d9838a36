"""Lab 2 of a deep-learning course in PyTorch Lightning: low-rank factorisation by gradient descent, and a 4-12-3
MLP on Iris.

Where things are: :mod:`lab2_lightning.models` (the two exercises' LightningModules), :mod:`lab2_lightning.data`
(the DataModules), :mod:`lab2_lightning.callbacks` (work that needs the data or writes files),
:mod:`lab2_lightning.cli` (``lab2``'s commands), :mod:`lab2_lightning.lab` (the whole lab and its report). This
module imports nothing, so that ``lab2`` catches Ctrl-C before the seconds of importing torch.
"""
