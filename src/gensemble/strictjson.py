"""JSON as gensemble writes it, parsed strictly: a hostile file's NaN, Infinity, 1e400 or 400-digit
integer is a ValueError here, never a crash later (math.isfinite on a huge int overflows)."""

from __future__ import annotations

import json
import math
from typing import Any


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} overflows")
    return value


MAX_EXACT_INT = 2**53  # beyond this a JSON integer is not a number any artefact of ours holds


def _bounded_int(text: str) -> int:
    # Checked on the text first, so a 400-digit integer costs nothing and never reaches float().
    if len(text.lstrip("-")) > 16 or abs(int(text)) > MAX_EXACT_INT:
        raise ValueError(f"integer {text[:20]}{'…' if len(text) > 20 else ''} is out of range (over 2**53)")
    return int(text)


def strict_loads(raw: bytes | str) -> Any:
    """JSON as gensemble writes it: no NaN or Infinity, floats finite, integers within ±2**53."""
    return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int)
