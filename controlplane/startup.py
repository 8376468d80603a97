"""Start-up errors: configuration problems reported as one sentence naming the variable and the fix."""


class StartupError(Exception):
    """A configuration problem reported to the operator as one sentence, never a traceback."""
