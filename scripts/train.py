"""Run Lab 2: the whole lab with no arguments, or one experiment: ``--config configs/factorise.yaml``."""

from lab2_lightning.train import main

if __name__ == "__main__":
    main()
