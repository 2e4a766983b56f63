import sys
from pathlib import Path

import torch

# Tests import their small helpers as a plain module.
sys.path.insert(0, str(Path(__file__).parent))
# Two cores, shared: one intra-op thread avoids oversubscription and keeps timings steady.
torch.set_num_threads(1)
