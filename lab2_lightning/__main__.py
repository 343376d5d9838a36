"""``python -m lab2_lightning``: the same program as ``lab2``."""

from lab2_lightning.main import main

main()
