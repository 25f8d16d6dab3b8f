"""Errors the trainer reports to the user: each says what to fix.

Only these (and their subclasses elsewhere: StoreError, PublishError) are shown as
one line without a traceback (trainer/__main__.py, trainer/schedule.py); any other
exception, a bare ValueError included, is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix, and the message says how: shown as one line."""


class InputError(UserError, ValueError):
    """Bad input: a data file that is missing, empty or not in the expected format,
    or a flag, setting or BOOKREC_TRAIN_* variable out of its range. A ValueError
    too, so callers that validate values catch it as one."""


class ModelFitError(UserError):
    """Training could not produce a usable model."""


class StudyJoined(Exception):
    """This trainer ran its share of a study shared by several trainers, and another
    one of them published the model (trainer/models/shared_study.py): the run ends
    without an artifact of its own, and that is a success."""
