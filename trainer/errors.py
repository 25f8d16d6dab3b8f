"""Errors the trainer reports to the user: each says what to fix."""

from __future__ import annotations


class InputError(Exception):
    """An input file is missing, empty or not in the expected format."""


class ModelFitError(Exception):
    """Training could not produce a usable model."""
