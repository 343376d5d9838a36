"""Rebuild the lab report from saved results, without training: ``python scripts/report.py reports/results.json``."""

from lab2_lightning.lab.report import main

if __name__ == "__main__":
    main()
