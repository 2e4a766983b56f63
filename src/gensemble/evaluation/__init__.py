"""The parts of `gensemble evaluate` (gensemble.evaluation.run): how samples become features (features.py),
and the result table with its directions and best rows (result.py)."""
