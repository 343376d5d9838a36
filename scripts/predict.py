"""Classify a CSV with a trained MLP: ``python scripts/predict.py CKPT IN.csv -o OUT.csv`` (``--help``)."""

from lab2_lightning.predict import main

if __name__ == "__main__":
    main()
