"""Image files: grids, atomic PNG / npz writes, and reading single images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gensemble.errors import DataError
from gensemble.imageio import load_image, make_grid, save_grid, save_npz


def test_make_grid_shapes_and_values():
    x = -torch.ones(5, 1, 4, 6)
    x[0] = 1.0
    grid = make_grid(x, padding=2)  # 5 images -> 3 per row, 2 rows
    assert grid.shape == (2 * (4 + 2) + 2, 3 * (6 + 2) + 2, 3) and grid.dtype == np.uint8
    assert (grid[2:6, 2:8] == 255).all() and (grid[2:6, 10:16] == 0).all()
    assert make_grid(torch.zeros(4, 3, 5, 5), nrow=4, padding=0).shape == (5, 20, 3)
    assert make_grid(torch.zeros(2, 3, 5, 5), nrow=8, padding=1).shape == (7, 13, 3)
    with pytest.raises(ValueError):
        make_grid(torch.zeros(2, 5, 5))


def test_save_grid_writes_png_atomically(tmp_path):
    path = save_grid(torch.rand(6, 3, 8, 8) * 2 - 1, tmp_path / "out" / "grid.png", nrow=3)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (3 * 10 + 2, 2 * 10 + 2) and img.mode == "RGB"
    assert [p.name for p in path.parent.iterdir()] == ["grid.png"]  # no temp file left behind


def test_save_npz_images_points_and_extras(tmp_path):
    x = torch.tensor([-1.0, 0.0, 1.0]).view(1, 1, 1, 3).expand(2, 3, 1, 3)
    path = save_npz(x, tmp_path / "s.npz", member=torch.tensor([0, 1]), tag="a")
    with np.load(path) as data:
        assert data["x"].shape == (2, 1, 3, 3) and data["x"].dtype == np.uint8
        assert data["x"][0, 0, :, 0].tolist() == [0, 128, 255]
        assert data["member"].tolist() == [0, 1] and str(data["tag"]) == "a"
    points = save_npz(torch.randn(7, 2) * 4, tmp_path / "p.npz")
    with np.load(points) as data:
        assert data["x"].shape == (7, 2) and data["x"].dtype == np.float32


def test_load_image_resize_channels_and_errors(tmp_path):
    arr = np.zeros((10, 20, 3), dtype=np.uint8)
    arr[:, :, 0] = 255
    Image.fromarray(arr).save(tmp_path / "red.png")
    img = load_image(tmp_path / "red.png")
    assert img.shape == (3, 10, 20) and float(img[0].min()) == 1.0 and float(img[1].max()) == -1.0
    grey = load_image(tmp_path / "red.png", size=4, channels=1)
    assert grey.shape == (1, 4, 4)
    assert torch.allclose(grey, torch.full_like(grey, round(0.299 * 255) / 127.5 - 1), atol=1 / 127.5)

    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match="bad.png"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(DataError, match="missing.jpg"):
        load_image(tmp_path / "missing.jpg")
