"""The house's layers: imports point down (import-linter contract in pyproject.toml) and no gensemble
module takes part in an import cycle, type-only imports included (a type that points up the layers
is a dependency all the same)."""

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]


def import_cycles(package: str = "gensemble") -> list[list[str]]:
    """Strongly connected components of more than one module in the import graph (type-only included)."""
    graph = grimp.build_graph(package, cache_dir=None, exclude_type_checking_imports=False)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for m in sorted(edges):
        if m not in index:
            visit(m)
    return out


def test_no_import_cycles():
    assert import_cycles() == []


def test_a_cycle_would_be_found(tmp_path, monkeypatch):
    """The check can fail: a two-module package that imports itself in a circle is reported."""
    pkg = tmp_path / "circ"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from circ import b\n")
    (pkg / "b.py").write_text("from circ import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("circ") == [["circ.a", "circ.b"]]


def test_a_type_only_cycle_would_be_found(tmp_path, monkeypatch):
    pkg = tmp_path / "typed"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from typed import b\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from typed import a\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("typed") == [["typed.a", "typed.b"]]


@pytest.mark.skipif(
    shutil.which("lint-imports") is None and not (Path(sys.executable).parent / "lint-imports").exists(),
    reason="import-linter is a dev dependency",
)
def test_layers_contract_is_kept():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    res = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:]
    assert "1 kept, 0 broken" in res.stdout
