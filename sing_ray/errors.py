"""Errors a user can act on. The CLI prints their message alone and exits with ``exit_code``."""
from __future__ import annotations


class UserError(Exception):
    """Bad input: a missing file, a malformed dataset, an unknown name. Exit status 2."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ValidationError(UserError):
    """A note (or other item) failed validation in strict mode. Exit status 1."""

    exit_code = 1
