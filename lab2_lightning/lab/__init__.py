"""The whole lab (:mod:`.run_lab`) and its report (:mod:`.report`)."""
