"""The parts of `gensemble evaluate` (gensemble.evaluation.evaluate): how samples become features (features.py),
and the result table with its directions and best rows (result.py)."""
