"""Exceptions raised by boomda for bad input.

Every error names the field, option or file at fault, so that a user never has to read a
traceback from inside torch to find out what was wrong with their data or configuration.
"""

from __future__ import annotations


class BoomdaError(ValueError):
    """Base class for errors caused by user input (data, configuration, files).

    A ``ValueError``, so that ``except ValueError`` catches it too. Its message is one line
    naming the file, field or option at fault; the command line prints it and exits with
    code 2. Raised as such for a model that is not trained yet, or a checkpoint or file that
    cannot be read.
    """


class DataError(BoomdaError):
    """Invalid data: shapes, values, labels or modality names."""


class ConfigError(BoomdaError):
    """Invalid configuration: an unknown or out-of-range option."""


class TrainingError(BoomdaError, FloatingPointError):
    """Training cannot go on: the loss became non-finite (names the terms at fault).

    Also a ``FloatingPointError``. Raised too when a trained model's outputs are not finite.
    """

