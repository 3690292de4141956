"""Checks on the paths a command writes, made before any work starts (never write over what the user has)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from polyplib.errors import ConfigError


def _writable(folder: Path) -> bool:
    """Writable, and not marked read-only by its mode bits (root ignores those, we honour them)."""
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _existing_ancestor(path: Path) -> Path:
    """`path` itself or the nearest parent that exists."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_dir(path: str | os.PathLike, option: str = "--out", named: str | os.PathLike | None = None) -> Path:
    """`path` is a folder, or one that can be made: not an existing file, below a writable folder (errors name
    `named`, the path the user gave, when `path` is derived from it)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        if named is not None:  # the folder a file path needs
            raise ConfigError(f"{option} {named}: its folder {path} is an existing file; choose another path")
        raise ConfigError(f"{option} {path} is an existing file, not a folder; choose a folder path")
    named = path if named is None else named
    base = _existing_ancestor(path)
    if not base.is_dir():
        raise ConfigError(f"{option} {named}: {base} is a file, so the folder cannot be made; choose another path")
    if not _writable(base):
        raise ConfigError(f"{option} {named}: {base} is not writable; choose a folder you can write to")
    return path


def check_output_file(path: str | os.PathLike, option: str = "--out", overwrite: bool = False) -> Path:
    """`path` can be written as a file: not a folder, not an existing file (unless `overwrite`), writable parent."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a folder; give a file path such as {path / 'results.json'}")
    if path.exists() and not overwrite:
        raise ConfigError(f"{option} {path} already exists; pass --overwrite to replace it or choose another file")
    check_output_dir(path.parent, option, named=path)
    return path


def check_positive(value: int | None, option: str) -> None:
    """A size or count option must be a positive integer (None: its default)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"{option} {value}: must be a positive integer")


def check_probability(value: float, option: str) -> None:
    """A threshold option must lie in [0, 1]."""
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{option} {value}: must be between 0 and 1 (a probability)")


def stale_temporaries(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """Leftover `.NAME.*.tmp` files of interrupted atomic writes of `names` in `folder`."""
    if not folder.is_dir():
        return []
    return sorted(p for name in names for p in folder.glob(f".{name}.*.tmp") if p.is_file())
