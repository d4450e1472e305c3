"""Exceptions raised by facexpr.

Every exception subclasses :class:`FacexprError`. Messages say what went wrong, where (file, key,
frame) and, where it helps, how to fix it, so that users can act without reading our code.
"""

from __future__ import annotations

from pathlib import Path


class FacexprError(Exception):
    """Base class of every error facexpr raises on purpose."""


class ConfigError(FacexprError, ValueError):
    """An option, config key or argument has an invalid value."""


class InputError(FacexprError):
    """A user-supplied input (file, folder, stream) cannot be used.

    Attributes:
        path: the offending file, or ``None`` for non-file inputs (webcam index, array).
        problem: the problem in a few words, without the path.
    """

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)

    def __reduce__(self) -> tuple:
        # Pickled by its fields (a worker process sends it back to its pool); the default,
        # ``cls(*self.args)``, would call ``__init__`` with the message alone and fail.
        return (type(self), (self.path, self.problem), self.__dict__)


class MissingDependencyError(FacexprError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the optional package '{package}': "
            f"install it with  pip install 'facexpr[{extra}]'"
        )


class ModelError(FacexprError):
    """A model file is missing, corrupt or does not match its card."""


class DamagedInputError(InputError):
    """An input was read only in part: everything decodable was delivered, the rest was lost.

    Raised once the readable part has been delivered (a video reader raises it after its last good
    frame), so a caller can keep what it got and still report the input as failed.

    Attributes:
        kept: frames (or items) delivered before the error.
    """

    def __init__(self, path: str | Path | None, problem: str, kept: int = 0) -> None:
        super().__init__(path, problem)
        self.kept = kept
