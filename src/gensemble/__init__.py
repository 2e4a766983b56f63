"""gensemble: ensembles of generative image models.

The public API, importable from the package top level (loaded lazily, so `import gensemble` is
cheap)::

    from gensemble import train_run, load_run, sample, score_run, evaluate_run, report_run, complete

    run = train_run({"data": {"name": "grid25"}, "model": {"name": "mlp-gan"},
                     "train": {"steps": 200}}, out="runs/g")       # a YAML path, a dict or a RunConfig
    x = sample(run, 64).x                                          # tensors; saving is save_samples'
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> (module, attribute): the one table of what the top level offers.
_API = {
    "train_run": ("gensemble.run", "train_run"),
    "load_run": ("gensemble.run", "load_run"),
    "parse_config": ("gensemble.run", "parse_config"),
    "load_config": ("gensemble.run", "load_config"),
    "RunConfig": ("gensemble.run", "RunConfig"),
    "Ensemble": ("gensemble.run", "Ensemble"),
    "sample": ("gensemble.run.sample", "sample_run"),
    "sample_run": ("gensemble.run.sample", "sample_run"),
    "sample_to_file": ("gensemble.sample_job", "sample_to_file"),
    "SampleRequest": ("gensemble.sample_job", "SampleRequest"),
    "save_samples": ("gensemble.sample_job", "save_samples"),
    "Samples": ("gensemble.sampling", "Samples"),
    "sample_with_fusion": ("gensemble.fusion", "sample_with_fusion"),
    "build_fusion": ("gensemble.fusion", "build_fusion"),
    "score": ("gensemble.tournament", "score"),
    "score_run": ("gensemble.tournament", "score_run"),
    "evaluate_run": ("gensemble.evaluation.evaluate", "evaluate_run"),
    "evaluate_samples": ("gensemble.evaluation.evaluate", "evaluate_samples"),
    "report_run": ("gensemble.report", "report_run"),
    "complete": ("gensemble.editing.files", "complete_files"),
    "Editor": ("gensemble.editing", "Editor"),
    "export_generator": ("gensemble.export", "export_generator"),
    "run_demo": ("gensemble.demo", "run_demo"),
    "GensembleError": ("gensemble.errors", "GensembleError"),
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'gensemble' has no attribute {name!r}")
    module, attr = _API[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
