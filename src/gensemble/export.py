"""Export one member's generator as TorchScript, usable with nothing but torch.

import torch, json
g = torch.jit.load("G.pt")           # z (N, z_dim) -> samples, images in [-1, 1]
meta = json.load(open("G.json"))      # {"z_dim": 64, "output_shape": [1, 28, 28], ...}
x = g(torch.randn(16, meta["z_dim"]))
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gensemble.artefacts import dumps
from gensemble.imageio import check_output
from gensemble.run import load_run
from gensemble.runfolder import Outputs


class Decode(nn.Module):
    """A model's `decode` (VAEs map logits to [-1, 1] there) as a module that tracing can follow."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z)


def export_generator(
    run: str | Path, member: str, output: str | Path, step: int | None = None
) -> dict[str, Any]:
    """Trace member `member`'s generator (evaluation mode) to OUTPUT.pt and write OUTPUT.json beside it."""

    output = check_output(output, (".pt",))
    ens = load_run(run, step=step)
    model = ens.member(member).model.eval()
    z = torch.randn(2, model.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        traced = torch.jit.trace(Decode(model).eval(), z, check_trace=False)
        expected, got = model.decode(z), traced(z)
    if not torch.allclose(expected, got, atol=1e-5):  # the trace must reproduce the model exactly
        raise RuntimeError(f"the traced generator of {member!r} differs from the model")
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    meta = {
        "member": member,
        "family": model.family,
        "z_dim": model.z_dim,
        "output_shape": list(expected.shape[1:]),
        "output_range": [-1.0, 1.0] if len(expected.shape) == 4 else None,
        "latent": "standard normal, shape (N, z_dim)",
        "step": ens.member(member).step,
        "run": str(run),
        "torch": torch.__version__,
    }
    # G.pt and G.json land together or not at all.
    out = Outputs(output.parent)
    out.add(output, buf.getvalue())
    out.add(output.with_suffix(".json"), dumps(meta, indent=2))
    out.commit()
    return {"output": str(output), "meta": str(output.with_suffix(".json")), **meta}
