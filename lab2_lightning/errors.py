"""The project's own error: one line, meant for the user, printed by the CLI with exit status 2."""


class LabError(Exception):
    """A problem with the user's input (data, configuration, checkpoint), not a bug in this package.

    The message is a single line that names what is wrong and where (file, row, column, option), so the
    CLI can print it as it is instead of a traceback.
    """
