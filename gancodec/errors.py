"""Errors that are the user's to fix: the CLI prints them as one line and exits non-zero."""


class UserError(Exception):
    """Bad input, a missing file, an impossible option: reported without a traceback."""


class CorruptFileError(UserError):
    """A compressed file that is truncated, damaged, or not a gancodec file at all."""


class ModelMismatchError(UserError):
    """A compressed file made by model weights other than the ones loaded."""
