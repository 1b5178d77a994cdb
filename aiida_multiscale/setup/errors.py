"""The one exception of the set-up: a problem the user can fix, said in one line."""

__all__ = ('SetupError',)


class SetupError(Exception):
    """A set-up problem, with a one-line message that names what is wrong and how to fix it."""
