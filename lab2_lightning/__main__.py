"""``python -m lab2_lightning``: the same as ``python scripts/train.py``."""

from lab2_lightning.train import main

main()
