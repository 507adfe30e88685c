"""The root of the errors a user can cause.

:class:`QforgeError` is the base of every exception that reports a mistake in qforge's
input (a spec, a program, an operand, a command-line option, a missing tool) rather than
a bug: the command line prints such an error as one line, ``qforge: error: MESSAGE``, and
exits with status 2. Any other exception is a bug and keeps its traceback.

>>> issubclass(QforgeError, Exception)
True
"""

__all__ = ["QforgeError", "InputError", "OperandError", "shown", "shown_path"]


class QforgeError(Exception):
    """A mistake in qforge's input, reported to the user as one line."""


class InputError(QforgeError, ValueError):
    """A setting outside what is allowed (a precision mode, an output-stage setting, a
    random key, a board, a clock...); the message names the field, the value and what
    is allowed.

    >>> raise InputError("output.shift = 99: allowed range is 0 .. 31")
    Traceback (most recent call last):
    ...
    InputError: output.shift = 99: allowed range is 0 .. 31
    """


class OperandError(QforgeError, ValueError):
    """An operand matrix has the wrong type, shape or values for the requested mode
    (raised by :mod:`qforge.sim.model.numerics` and :mod:`qforge.sim.model.paired`)."""


def shown(value, limit: int = 80) -> str:
    """``repr(value)`` for an error message, shortened when longer than ``limit``
    characters (a spec, an argument or a line may hold a number of thousands of digits
    or a long string: the message stays one readable line).

    >>> shown(1.5)
    '1.5'
    >>> shown(10 ** 100, limit=40)
    '10000000000000000000...(101 characters)'
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:max(limit - 20, 1)]}...({len(text)} characters)"


def shown_path(path) -> str:
    """``path`` as an error message shows it: whole up to 200 characters, a longer one
    as its two ends and its length (a 5000-character name would bury the message).

    >>> shown_path("a.toml")
    'a.toml'
    >>> shown_path("/tmp/" + "y" * 500 + "/out.png")
    '/tmp/yyyyyyyyyyyyyyy...yyyyyyyyyyyyyyyyyyyyyy/out.png (513 characters)'
    """
    text = str(path)
    return text if len(text) <= 200 else f"{text[:20]}...{text[-30:]} ({len(text)} characters)"
