"""The two ways a command ends early on purpose, each as one line for the user (`cli.main`)."""


class Interrupted(Exception):
    """Ctrl-C (SIGINT) or SIGTERM ended the run; the message says what was kept. Exit status 130."""
