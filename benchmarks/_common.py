"""Pieces the benchmark scripts share."""

from __future__ import annotations

from pathlib import Path


def write_marked_table(doc: Path, text: str, begin: str, end: str) -> None:
    """Replace the text between the `begin` and `end` markers in a doc (if both markers are there)."""
    if not doc.exists():
        return
    body = doc.read_text()
    if begin in body and end in body:
        head, rest = body.split(begin, 1)
        doc.write_text(f"{head}{begin}\n{text}\n{end}{rest.split(end, 1)[1]}")
