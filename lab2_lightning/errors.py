"""The error a user can cause and fix: the entry point prints it as one line and exits with status 2."""


class LabError(Exception):
    """Bad input, named in one line: the option, file, line or setting, and what to do about it."""


# What to do when memory runs out, however it is found out: before a model is drawn, or from the allocator.
MEMORY_ADVICE = "use a smaller matrix or rank, fewer seeds, or a machine with more memory"
