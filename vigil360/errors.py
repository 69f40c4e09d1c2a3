"""Errors meant for the person at the keyboard: the CLI prints their message as one line."""


class UserError(Exception):
    """Bad input or a missing prerequisite, with a message that says what to do."""


class MissingModelError(UserError):
    """A model file or checkpoint is not there; the message names what to fetch and how."""
