"""One upgrade case per Alembic revision: ``rNNNN.py`` holds ``seed(conn)`` and ``check(conn)``.

``tests/test_upgrade_path.py`` builds a database at revision NNNN, calls ``seed`` on it,
upgrades to head and calls ``check``; see docs/upgrades.md. A case may also define
``crossed(conn)``: what its migration does to rows that were there before it, checked at
head after every upgrade that starts earlier. And it may set
``REWRITES = {table: {column, ...}}``: columns its own migration rewrites on purpose, so the
row-by-row comparison of upgrades that cross it leaves them to ``check``.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from types import ModuleType


def discover() -> dict[str, ModuleType]:
    """Every case module, by the revision it starts from (``r0004`` -> ``"0004"``)."""
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.startswith("r") and info.name[1:].isdigit():
            found[info.name[1:]] = importlib.import_module(f"{__name__}.{info.name}")
    return dict(sorted(found.items()))
