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


JUDGES_BEGIN, JUDGES_END = "<!-- judges:begin -->", "<!-- judges:end -->"


def write_results_doc(doc: Path, text: str) -> None:
    """Write RESULTS.md from the quality benchmark, keeping the judges benchmark's marked section."""
    kept = ""
    if doc.exists():
        old = doc.read_text()
        if JUDGES_BEGIN in old and JUDGES_END in old:
            start = old.rfind("\n## Judges", 0, old.index(JUDGES_BEGIN))
            kept = old[
                start if start >= 0 else old.index(JUDGES_BEGIN) : old.index(JUDGES_END) + len(JUDGES_END)
            ]
    doc.write_text(text.rstrip("\n") + ("\n" + kept + "\n" if kept else "\n"))
