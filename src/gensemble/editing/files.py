"""The file side of editing, for the CLI: read images and masks, write completions, paths and JSON."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gensemble.artefacts import dumps
from gensemble.data.images import read_image_folder
from gensemble.editing import Editor, candidates_sheet, completion_quality, latent_path
from gensemble.editing.complete import CompletionConfig
from gensemble.editing.masks import box_mask, mask_from_image
from gensemble.errors import ConfigError, DataError, shown
from gensemble.imageio import check_output, load_image, png_bytes, save_grid
from gensemble.run import load_run
from gensemble.runfolder import Outputs, writes_into_run


def read_images(path: str | Path) -> tuple[Tensor, list[Path]]:
    """One image file, or every PNG/JPEG of a folder: (B, C, H, W) in [-1, 1] and their paths."""

    path = Path(path)
    if path.is_dir():
        return read_image_folder(path)
    if not path.is_file():
        raise DataError(f"image {shown(str(path))} does not exist; pass a PNG/JPEG file or a folder of them")
    return load_image(path)[None], [path]


def hole_for(images: Tensor, mask: str | Path | None, box: str | None) -> Tensor:
    """The hole (1, 1, H, W) from --mask or --box (exactly one), checked against the images' size."""
    if (mask is None) == (box is None):
        raise ConfigError("give exactly one of --mask MASK.png or --box x,y,w,h")
    h, w = images.shape[2:]
    if box is not None:
        return box_mask(box, h, w)[None]
    return mask_from_image(load_image(mask), mask, h, w)[None]


def load_editor(run: str | Path, device: str = "cpu", cfg: CompletionConfig = CompletionConfig()) -> Editor:

    return Editor.build(load_run(run, device), cfg)


def complete_files(
    run: str | Path,
    image: str | Path,
    output: str | Path,
    mask: str | Path | None = None,
    box: str | None = None,
    candidates: bool = False,
    device: str = "cpu",
) -> dict[str, Any]:
    """Complete an image (or a folder of them) and write the result; return what was chosen, with scores.

    A single image goes to OUT.png; a folder to the folder OUT, one PNG per image. With `candidates`,
    OUT-candidates.png shows each image with its hole, every member's proposal and the choice, and
    OUT.json (or OUT/completion.json) holds every candidate's member name and score.
    """
    x, paths = read_images(image)
    hole = hole_for(x, mask, box)
    single = Path(image).is_file()
    output = Path(output)
    if single:
        check_output(output, (".png",))
    elif output.exists() and not output.is_dir():
        raise DataError(f"output {shown(str(output))} must be a folder when --image is a folder")
    editor = load_editor(run, device)
    editor.check_images(x, [str(p) for p in paths])
    result = editor.complete(x, hole)
    summary = {
        str(p): {"chosen": result.members[int(result.choice[i])], "candidates": result.scores(i)}
        for i, p in enumerate(paths)
    }
    # All or nothing: the completions, the candidates sheet and the scores land together or not at all.
    out = Outputs(output.parent if single else output)
    if single:
        out.add(output, png_bytes(result.chosen[0]))
        extra = output.with_name(output.stem + "-candidates.png")
        report = output.with_suffix(".json")
    else:
        for i, p in enumerate(paths):
            out.add(output / f"{p.stem}.png", png_bytes(result.chosen[i]))
        extra, report = output / "candidates.png", output / "completion.json"
    if candidates:
        out.add(extra, candidates_sheet(result, x, hole, [p.name for p in paths]))
        out.add(report, dumps({"members": result.members, "images": summary}, indent=2))
    out.commit()
    return {"output": str(output), "images": summary}


def project_file(
    run: str | Path, image: str | Path, device: str = "cpu", n_reference: int = 32
) -> dict[str, Any]:
    """Which member explains an image best, and whether any member explains it as well as typical data."""
    x, paths = read_images(image)
    editor = load_editor(run, device)
    editor.check_images(x, [str(p) for p in paths])
    threshold = editor.typical_error(n_reference)
    report = editor.project(x)
    images = {}
    for i, p in enumerate(paths):
        members = {
            name: {k: round(float(v[i]), 6) for k, v in row.items() if k != "z"}
            for name, row in report["members"].items()
        }
        entry = {
            "best_member": report["best"][i],
            "best_mse": round(float(report["best_mse"][i]), 6),
            "unlike_training_data": bool(report["best_mse"][i] > threshold),
            "members": members,
        }
        if "critic_p_image" in report:
            entry["critic_p_image"] = round(float(report["critic_p_image"][i]), 6)
        images[str(p)] = entry
    return {"threshold_mse": round(threshold, 6), "n_reference": n_reference, "images": images}


def interpolate_files(
    run: str | Path, a: str | Path, b: str | Path, output: str | Path, steps: int = 8, device: str = "cpu"
) -> dict[str, Any]:
    """Write the latent path from image a to image b in the member that explains both best."""
    check_output(output, (".png",))
    xa, _ = read_images(a)
    xb, _ = read_images(b)
    if len(xa) != 1 or len(xb) != 1:
        raise DataError("--from and --to each take one image file, not a folder")
    editor = load_editor(run, device)
    editor.check_images(torch.cat([xa, xb]), [str(a), str(b)])
    member, path = latent_path(editor, xa[0], xb[0], steps)
    save_grid(torch.cat([xa, path, xb]), output, nrow=steps + 2)
    return {"output": str(output), "member": member, "steps": steps}


@writes_into_run("complete")
def complete_heldout(
    run: str | Path, n: int = 8, device: str = "cpu", cfg: CompletionConfig = CompletionConfig()
) -> dict[str, Any]:
    """Complete n held-out images with a centre hole; write RUN/completion/ (panel.png and scores) for the report."""
    if n < 1:
        raise ConfigError(f"--heldout must be at least 1, got {n}")
    editor = load_editor(run, device, cfg)
    if n > len(editor.heldout):
        warnings.warn(
            f"--heldout {n} is more than the {len(editor.heldout)} held-out images the critic never saw "
            f"(the evaluation half of the test split; a folder run lists them in RUN/heldout.txt); "
            f"completing all {len(editor.heldout)}",
            stacklevel=2,
        )
    x = editor.heldout[:n]
    _, h, w = editor.shape
    hole = box_mask((w // 4, h // 4, w // 2, h // 2), h, w)[None]
    result = editor.complete(x, hole)
    quality = completion_quality(result, x, hole)
    folder = Path(run) / "completion"
    out = Outputs(run)
    out.add(folder / "panel.png", candidates_sheet(result, x, hole))
    summary = {
        "members": result.members,
        "n": len(x),
        "hole": "centre box, half the width and height",
        "columns": ["original", "masked input", *result.members, "the choice"],
        "chosen": [result.members[int(i)] for i in result.choice],
        "hole_mse": {
            **{m: round(float(quality["per_member"][j].mean()), 6) for j, m in enumerate(result.members)},
            "choice": round(float(quality["chosen"].mean()), 6),
            "oracle": round(float(quality["oracle"].mean()), 6),
        },
    }
    out.add(folder / "completion.json", dumps(summary, indent=2))
    out.commit()
    return summary
