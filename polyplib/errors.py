"""Errors a user can act on: each message names the file or option and what to do."""


class PolypError(Exception):
    """Base class of every error polyplib raises on purpose."""


class DataError(PolypError):
    """A dataset, split or file is missing, unreadable or inconsistent."""


class ConfigError(PolypError):
    """An option or configuration value is invalid."""


class WeightsError(PolypError):
    """Pretrained weights are unavailable or fail verification."""


class DivergenceError(PolypError, FloatingPointError):
    """Training produced a non-finite loss, or a trained model non-finite outputs (the message says where and what to do)."""
