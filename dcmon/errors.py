"""Errors that name what was wrong and where."""


class DcmonError(Exception):
    """Base class: a problem the user can fix, reported without a traceback."""


class ConfigError(DcmonError):
    """A facility, policy or user file is invalid. The message names file, field and value."""


class InputError(DcmonError):
    """A command-line option or an input file is invalid."""
