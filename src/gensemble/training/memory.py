"""What a run will cost before it runs: memory, estimated on PyTorch's "meta" device.

Building a member on the meta device allocates nothing, yet gives every parameter's shape and,
through one forward pass at the real batch size, every activation's. A config that is legal but
cannot fit (ngf 10**6, batch 10**9) is then refused with its estimate before a folder is written
or a byte allocated, instead of crashing (or swapping for minutes) during training.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

import torch
from torch import nn

from gensemble.errors import ConfigError

if TYPE_CHECKING:
    from gensemble.training.member import MemberConfig

# Per parameter: weight, gradient, two Adam moments (+ an EMA copy at most), float32.
BYTES_PER_PARAM = 5 * 4
# Per activation value: the output kept for backward, its gradient, and slack for temporaries.
BYTES_PER_ACTIVATION = 3 * 4


def member_bytes(member: MemberConfig, shape: tuple[int, ...], batch_size: int) -> int:
    """Estimated peak training memory of one member (weights, optimiser state, activations)."""
    entry = member.entry()
    with torch.device("meta"):
        model = entry.build(member.model_config(), shape)
        params = sum(p.numel() for p in model.parameters())
        outputs = [0]

        def count(_m: nn.Module, _i: object, out: object) -> None:
            if isinstance(out, torch.Tensor):
                outputs[0] += out.numel()

        leaves = [m for m in model.modules() if not list(m.children())]
        handles = [m.register_forward_hook(count) for m in leaves]
        try:
            z = torch.empty(batch_size, model.z_dim)
            if entry.family == "gan":
                fake = model.G(z)
                model.D(fake)
                model.D(fake)  # the real batch goes through D too
            else:
                x = torch.empty(batch_size, *shape)
                model(x, eps=z)
        finally:
            for h in handles:
                h.remove()
    return params * BYTES_PER_PARAM + outputs[0] * BYTES_PER_ACTIVATION + batch_size * math.prod(shape) * 4


def available_bytes(device: torch.device) -> int | None:
    """Free memory on the device that will train (None when it cannot be told)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(
    members: tuple[MemberConfig, ...], shape: tuple[int, ...], batch_size: int, device: torch.device
) -> int:
    """Refuse a run whose estimated memory exceeds what the device has free; return the estimate."""
    need = 0
    for m in members:
        try:
            cost = member_bytes(m, shape, batch_size)
        except (RuntimeError, ValueError, NotImplementedError):
            continue  # an op the meta device lacks: no estimate, let the build itself decide
        need += cost  # the stacked engine holds every member at once, so sum them
    free = available_bytes(device)
    if free is not None and need > free:
        raise ConfigError(
            f"this run needs about {gib(need)} of memory to train but {device.type} has {gib(free)} free; "
            "reduce train.batch_size, the models' widths, or the number of members"
        )
    return need


def gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**28 else f"{n / 2**20:.0f} MiB"
