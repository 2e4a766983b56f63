"""Signing a command's commit records, so that recovery acts only on records gensemble itself made.

The key is this user's ($GENSEMBLE_CACHE/txn.key, made once, mode 0600), never inside a run: a
record in a folder someone handed us cannot carry a valid signature (docs/threat-model.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path


def txn_key() -> bytes:
    """This user's secret for signing commit records ($GENSEMBLE_CACHE/txn.key, made once, mode
    0600). A record in a folder someone handed us cannot carry a valid signature, so recovery
    never acts on a forged one."""
    folder = Path(os.environ.get("GENSEMBLE_CACHE") or Path.home() / ".cache" / "gensemble").expanduser()
    path = folder / "txn.key"
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            key = os.read(fd, 64)
        finally:
            os.close(fd)
        if len(key) == 32:
            return key
    key = secrets.token_bytes(32)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
    except FileExistsError:
        return txn_key() if path.is_file() and not path.is_symlink() else b""
    except OSError:
        return b""  # no cache: records are unsigned, and an interrupted set is discarded, not finished
    return key


def signature(entries: list[list[str]]) -> str:
    key = txn_key()
    if not key:
        return ""
    body = json.dumps(entries, separators=(",", ":")).encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()
