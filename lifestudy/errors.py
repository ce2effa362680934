"""Errors that reach the user as a message, never as a traceback.

Everything the package raises on bad input derives from :class:`LifestudyError`; the
CLI prints its message and exits non-zero. A message names the problem *and* the fix.
"""

__all__ = ["LifestudyError", "DatasetError", "UnsupportedModelError", "ConfigError", "RunFolderError"]


class LifestudyError(Exception):
    """Base class: bad input or a missing resource, explained for the user."""

    exit_code = 2


class DatasetError(LifestudyError):
    """A dataset is missing, incomplete or corrupt (the message gives the expected layout)."""


class UnsupportedModelError(LifestudyError, TypeError):
    """A model that LIFE (or a tool of the study) cannot handle."""


class ConfigError(LifestudyError, ValueError):
    """An option or combination of options that cannot work."""


class RunFolderError(ConfigError):
    """A run folder that cannot take this run: in use by another, holding another run, or not writable."""
