"""The ways a command ends on purpose, each as one line for the user (`cli.main`); anything else is a
bug of the library and keeps its traceback."""


class UserError(ValueError):
    """Bad input: a file, an option or a value the user gave. The message names it and says what to do;
    the command prints it as one line and exits with status 2 (`--debug` shows the traceback too). A
    ValueError, so that library callers (notebooks, tests) catch it as before."""


class Interrupted(Exception):
    """Ctrl-C (SIGINT) or SIGTERM ended the run; the message says what was kept. Exit status 130."""
