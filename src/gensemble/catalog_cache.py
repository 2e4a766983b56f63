"""What `gensemble list` printed last, cached per source tree, so a listing needs no torch import.

The key hashes the Python version and every module file of the package (path, size, modification
time): any edit, install or upgrade gives a new key, and the registries, the one source of the
names, are read again by the full command, which writes the cache anew. Only names and one-line
descriptions are cached, and a cache that does not parse as exactly that is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def cache_root() -> Path:
    """$GENSEMBLE_CACHE, else ~/.cache/gensemble."""
    return Path(os.environ.get("GENSEMBLE_CACHE") or Path.home() / ".cache" / "gensemble").expanduser()


def catalog_key() -> str:
    h = hashlib.blake2b(sys.version.encode(), digest_size=12)
    for path in sorted(PACKAGE.rglob("*.py")):
        st = path.stat()
        h.update(f"{path.relative_to(PACKAGE)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def cache_file() -> Path:
    return cache_root() / "catalog" / f"{catalog_key()}.json"


def cached_listing(kind: str) -> list[tuple[str, str]] | None:
    """(name, description) rows of `kind` from a fresh cache, or None (no cache, stale, damaged)."""
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
        rows = data[kind]
        if not all(isinstance(r, list) and len(r) == 2 and all(isinstance(v, str) for v in r) for r in rows):
            return None
        return [(r[0], r[1]) for r in rows]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_catalog(catalog: dict[str, list[tuple[str, str]]]) -> None:
    """Cache every kind's rows (atomically: a reader sees the old file or the new one); a cache that
    cannot be written (read-only home) only means the next listing loads the package again."""
    path = cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".catalog-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({k: [list(r) for r in v] for k, v in catalog.items()}, f)
        os.replace(tmp, path)
    except OSError:
        pass
