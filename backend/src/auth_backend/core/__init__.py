"""Project-wide plumbing shared by every app: settings helpers, request ids, logging, errors.

Nothing here is an installed Django app and nothing here defines models.
"""
