"""User errors of the `memory-ext` command: `UserError` and the argument checks that raise it.

A UserError is a mistake in what the user asked for (a missing file, a number out of range); the
command prints it as one line and exits with status 2 (cli.main). Anything else is a bug and keeps
its traceback. UserError is a ValueError, so callers of the run functions may catch either.
"""
from __future__ import annotations

import math
import os
from typing import Optional


class UserError(ValueError):
    """A bad argument or input file, reported as one line without a traceback."""


def flag(name: str) -> str:
    """'batch_size' -> '--batch-size'."""
    return "--" + name.replace("_", "-")


def at_least(args, name: str, low: float) -> None:
    """args.<name> >= low (a finite number), else a UserError naming the flag."""
    v = getattr(args, name)
    if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= low):
        raise UserError(f"{flag(name)} must be >= {low}, got {v}")


def above(args, name: str, low: float) -> None:
    """args.<name> > low (a finite number), else a UserError naming the flag."""
    v = getattr(args, name)
    if not (isinstance(v, (int, float)) and math.isfinite(v) and v > low):
        raise UserError(f"{flag(name)} must be a finite number > {low}, got {v}")


def no_nul(path: str, what: str) -> None:
    if "\x00" in path:
        raise UserError(f"{what} must not hold a NUL byte, got {path!r}")


def input_file(path: str, what: str) -> None:
    """An existing, readable regular file."""
    no_nul(path, what)
    if not os.path.exists(path):
        raise UserError(f"{what}: no such file {path}")
    if not os.path.isfile(path):
        raise UserError(f"{what} must be a file, got the folder {path}")
    if not os.access(path, os.R_OK):
        raise UserError(f"{what}: cannot read {path} (permission denied)")


def input_dir(path: str, what: str) -> None:
    """An existing, readable folder."""
    no_nul(path, what)
    if not os.path.isdir(path):
        raise UserError(f"{what}: no such folder {path}")
    if not os.access(path, os.R_OK | os.X_OK):
        raise UserError(f"{what}: cannot read the folder {path} (permission denied)")


def output_file(path: str, what: str) -> None:
    """A file path that can be written: not a folder, in an existing writable folder."""
    no_nul(path, what)
    if not path or os.path.isdir(path):
        raise UserError(f"{what} must be a file path, got the folder {path!r}")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UserError(f"{what}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{what}: cannot write in {parent} (permission denied)")


def output_dir(path: str, what: str) -> None:
    """A folder that exists or can be made (not a file; its nearest existing parent writable)."""
    no_nul(path, what)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{what} must be a folder, got the file {path}")
    probe: Optional[str] = os.path.abspath(path)
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if probe and not os.path.isdir(probe):
        raise UserError(f"{what}: {probe} is a file, not a folder")
    if probe and not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{what}: cannot write in {probe} (permission denied)")
