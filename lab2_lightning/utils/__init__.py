"""The project's mechanisms: one way to write files (:mod:`.atomic`), one way to claim a run's folder
(:mod:`.run_folder`), the CPU threads a run takes (:mod:`.threads`), and the memory check before a model is drawn
(:mod:`.memory`)."""
