"""The torch a compiled memory_ext runs under must be the one it was built against: the core's
C++ symbols and op schemas are tied to that torch. Checked before the core is loaded, so a
mismatch is one clear message instead of an undefined-symbol error."""
from __future__ import annotations

import os
import sys
from typing import Optional


def built_torch_version() -> Optional[str]:
    """The torch version recorded by setup.py when the core was built (None: not recorded, e.g.
    a core built by other means)."""
    try:
        from ._built_with import TORCH_VERSION
    except ImportError:
        return None
    return TORCH_VERSION


def mismatch_message(built: str, running: str) -> str:
    return (f"memory_ext was built against torch {built}, but torch {running} is installed; "
            "the compiled core only runs under the torch it was built with. Reinstall torch "
            f"{built}, or rebuild memory_ext against this torch: pip install --no-build-isolation "
            "--no-deps --force-reinstall <memory_ext source or sdist>")


def check_torch(running: str) -> None:
    """Raises ImportError (for the `memory-ext` command: one line on stderr and exit status 1)
    when the running torch is not the one the core was built against."""
    built = built_torch_version()
    if built is None or built == running:
        return
    msg = mismatch_message(built, running)
    if os.path.basename(sys.argv[0] or "") == "memory-ext":
        sys.stderr.write(f"memory-ext: error: {msg}\n")
        raise SystemExit(1)
    raise ImportError(msg)
