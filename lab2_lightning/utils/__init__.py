"""The project's mechanisms: one way to write files (:mod:`.atomic`), one way to claim a run's folder
(:mod:`.run_folder`)."""
