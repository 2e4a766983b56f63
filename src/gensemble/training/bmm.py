"""Explicit batched matmuls for stacked MLPs: the stacked engine's fast path.

`torch.vmap` over `functional_call` costs a fixed dispatch overhead per layer and per call, which
dominates for the small networks of toy members (a 2-D mixture GAN does little arithmetic per step).
An MLP made only of Linear, activation, BatchNorm1d/Identity, Flatten and Reshape layers is instead
run as a short plan of batched kernels over the stacked weights (M, out, in): one `baddbmm` per
Linear for all M members. The result equals M separate forward passes (up to float rounding), and
BatchNorm updates each member's running statistics from its own batch, as the loop does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gensemble.models.blocks import Reshape


@dataclass(frozen=True)
class Op:
    kind: str  # linear, relu, leaky, tanh, sigmoid, batchnorm, flatten, reshape, identity
    prefix: str = ""  # the module's name in the template (its parameters are PREFIX.weight, ...)
    arg: tuple = ()


def mlp_plan(template: nn.Module) -> list[Op] | None:
    """The plan for a Sequential of supported layers, or None (then vmap runs it)."""
    if not isinstance(template, nn.Sequential):
        return None
    plan = []
    # _modules, not named_children(): that skips repeats, and models reuse one activation instance.
    for name, m in template._modules.items():
        if isinstance(m, nn.Linear):
            plan.append(Op("linear", name, (m.bias is not None,)))
        elif isinstance(m, nn.ReLU):
            plan.append(Op("relu"))
        elif isinstance(m, nn.LeakyReLU):
            plan.append(Op("leaky", arg=(m.negative_slope,)))
        elif isinstance(m, nn.Tanh):
            plan.append(Op("tanh"))
        elif isinstance(m, nn.Sigmoid):
            plan.append(Op("sigmoid"))
        elif isinstance(m, nn.Identity):
            continue
        elif isinstance(m, nn.BatchNorm1d) and m.affine and m.track_running_stats and m.momentum is not None:
            plan.append(Op("batchnorm", name, (m.eps, m.momentum)))
        elif isinstance(m, nn.Flatten):
            plan.append(Op("flatten", arg=(m.start_dim, m.end_dim)))
        elif isinstance(m, Reshape):
            plan.append(Op("reshape", arg=tuple(m.shape)))
        else:
            return None
    return plan


def run_plan(
    plan: list[Op],
    params: dict[str, Tensor],
    buffers: dict[str, Tensor],
    x: Tensor,
    shared: bool,
    m: int,
    training: bool,
) -> Tensor:
    """The stacked forward pass: x (M, B, ...) (or (B, ...) when `shared`) -> (M, B, ...)."""
    h = x.unsqueeze(0).expand(m, *x.shape) if shared else x
    for op in plan:
        if op.kind == "linear":
            w = params[f"{op.prefix}.weight"]  # (M, out, in)
            lead = h.shape[:-1]
            flat = h.reshape(m, -1, h.shape[-1])
            if op.arg[0]:
                flat = torch.baddbmm(params[f"{op.prefix}.bias"].unsqueeze(1), flat, w.transpose(1, 2))
            else:
                flat = torch.bmm(flat, w.transpose(1, 2))
            h = flat.reshape(*lead, w.shape[1])
        elif op.kind == "relu":
            h = F.relu(h)
        elif op.kind == "leaky":
            h = F.leaky_relu(h, op.arg[0])
        elif op.kind == "tanh":
            h = torch.tanh(h)
        elif op.kind == "sigmoid":
            h = torch.sigmoid(h)
        elif op.kind == "batchnorm":
            h = _batchnorm(h, params, buffers, op, training)
        elif op.kind == "flatten":
            start, end = op.arg
            h = h.flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end)
        elif op.kind == "reshape":
            h = h.reshape(m, h.shape[1], *op.arg)
    return h


def _batchnorm(
    h: Tensor, params: dict[str, Tensor], buffers: dict[str, Tensor], op: Op, training: bool
) -> Tensor:
    """BatchNorm1d over (M, B, F), each member normalised by its own batch (training) or its own
    running statistics (eval); running statistics are updated in place as nn.BatchNorm1d does."""
    eps, momentum = op.arg
    weight, bias = params[f"{op.prefix}.weight"].unsqueeze(1), params[f"{op.prefix}.bias"].unsqueeze(1)
    mean_buf, var_buf = buffers[f"{op.prefix}.running_mean"], buffers[f"{op.prefix}.running_var"]
    if training:
        mean = h.mean(1, keepdim=True)
        var = h.var(1, unbiased=False, keepdim=True)
        with torch.no_grad():
            n = h.shape[1]
            mean_buf.mul_(1 - momentum).add_(momentum * mean.squeeze(1))
            var_buf.mul_(1 - momentum).add_(momentum * var.squeeze(1) * n / max(n - 1, 1))
            buffers[f"{op.prefix}.num_batches_tracked"].add_(1)
    else:
        mean, var = mean_buf.unsqueeze(1), var_buf.unsqueeze(1)
    return (h - mean) * torch.rsqrt(var + eps) * weight + bias
