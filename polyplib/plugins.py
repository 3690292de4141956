"""The packages that extend polyplib (run kinds, models, losses), imported by name on first need."""
from __future__ import annotations

import importlib

PLUGINS = ("polyplib.sam",)  # Polyp-SAM: registers its run kind, models and loss at import


def load_plugins() -> None:
    """Import every plugin so that its registrations run; a plugin that is not installed is skipped."""
    for module in PLUGINS:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
