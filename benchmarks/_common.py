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
CURVES_BEGIN, CURVES_END = "<!-- curves:begin -->", "<!-- curves:end -->"
# Sections written by hand, between these: the free ensemble's images (what the tables above score),
# and own_folders.py's, from docs/results/own_folders.json.
IMAGES_BEGIN, IMAGES_END = "<!-- images:begin -->", "<!-- images:end -->"
FOLDERS_BEGIN, FOLDERS_END = "<!-- folders:begin -->", "<!-- folders:end -->"
# The sections other benchmarks (or hands) write into RESULTS.md: (heading, begin marker, end marker).
KEPT_SECTIONS = (
    ("\n## What the free ensemble draws", IMAGES_BEGIN, IMAGES_END),
    ("\n## Your own folders", FOLDERS_BEGIN, FOLDERS_END),
    ("\n## Judges", JUDGES_BEGIN, JUDGES_END),
    ("\n## Equal compute", CURVES_BEGIN, CURVES_END),
)


def write_results_doc(doc: Path, text: str) -> None:
    """Write RESULTS.md from the quality benchmark, keeping the marked
    sections of KEPT_SECTIONS (each from its heading to its end marker)."""
    kept = []
    if doc.exists():
        old = doc.read_text()
        for heading, begin, end in KEPT_SECTIONS:
            if begin in old and end in old:
                start = old.rfind(heading, 0, old.index(begin))
                kept.append(old[start if start >= 0 else old.index(begin) : old.index(end) + len(end)])
    doc.write_text(text.rstrip("\n") + "".join("\n" + k for k in kept) + "\n")
