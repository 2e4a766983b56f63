"""Subcommands beyond the core loop: editing (complete, project, interpolate), export, configs."""

from __future__ import annotations

import argparse

from gensemble.cli.base import (
    COMMANDS,
    DEVICE_HELP,
    EXTRA_PARSERS,
    RUN_HELP,
    STEP_HELP,
    command,
    device_arg,
    print_json,
)
from gensemble.editing.files import complete_files, complete_heldout, interpolate_files, project_file
from gensemble.errors import GensembleError
from gensemble.examples import copy_example, example_configs
from gensemble.export import export_generator


@command("complete")
def cmd_complete(args: argparse.Namespace) -> int:

    if args.heldout is not None:
        if args.image is not None:
            raise GensembleError("give --image or --heldout N, not both")
        summary = complete_heldout(args.run, args.heldout, device=args.device)
        print_json(summary) if args.json else print(
            f"wrote {args.run}/completion/ (hole MSE {summary['hole_mse']})"
        )
        return 0
    if args.image is None or args.output is None:
        raise GensembleError("complete needs --image IMG (or a folder) and -o OUT, or --heldout N")
    result = complete_files(
        args.run,
        args.image,
        args.output,
        mask=args.mask,
        box=args.box,
        candidates=args.candidates,
        device=args.device,
    )
    if args.json:
        print_json(result)
    else:
        for path, entry in result["images"].items():
            print(f"{path}: chose {entry['chosen']}")
        print(f"wrote {result['output']}")
    return 0


@command("project")
def cmd_project(args: argparse.Namespace) -> int:

    result = project_file(args.run, args.image, device=args.device, n_reference=args.n_reference)
    if args.json:
        print_json(result)
        return 0
    for path, entry in result["images"].items():
        flag = "  UNLIKE THE TRAINING DATA" if entry["unlike_training_data"] else ""
        print(
            f"{path}: best member {entry['best_member']} (MSE {entry['best_mse']:.4g}; typical ≤ {result['threshold_mse']:.4g}){flag}"
        )
        for name, row in entry["members"].items():
            print(f"  {name:<16} " + "  ".join(f"{k} {v:.4g}" for k, v in row.items()))
    return 0


@command("interpolate")
def cmd_interpolate(args: argparse.Namespace) -> int:

    result = interpolate_files(
        args.run, args.source, args.target, args.output, steps=args.steps, device=args.device
    )
    print(f"wrote {result['output']} (latent path in member {result['member']})")
    return 0


@command("export")
def cmd_export(args: argparse.Namespace) -> int:

    result = export_generator(args.run, args.member, args.output, step=args.step)
    print(
        f"wrote {result['output']} and {result['meta']} (z_dim {result['z_dim']}, output {result['output_shape']})"
    )
    return 0


@command("configs")
def cmd_configs(args: argparse.Namespace) -> int:

    if args.action == "list":
        for name, doc in example_configs():
            print(f"{name:<30} {doc}")
        return 0
    if not args.name:
        raise GensembleError("configs copy needs the NAME of an example (see 'gensemble configs list')")
    print(f"wrote {copy_example(args.name, args.dest)}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("complete", help="fill a hole in an image: every member proposes, the critics choose")
    c.add_argument("run", help=RUN_HELP)
    c.add_argument("--image", default=None, help="an image file, or a folder of them")
    c.add_argument("--mask", default=None, help="mask image of the same size: white marks the hole")
    c.add_argument("--box", default=None, help="the hole as a rectangle x,y,w,h in pixels")
    c.add_argument(
        "-o", "--output", default=None, help="OUT.png (one image) or a folder (a folder of images)"
    )
    c.add_argument(
        "--candidates", action="store_true", help="also write every member's candidate and its score"
    )
    c.add_argument(
        "--heldout",
        type=int,
        default=None,
        metavar="N",
        help="complete N held-out images into RUN/completion/ (for the report)",
    )
    c.add_argument("--json", action="store_true", help="print the choices and scores as JSON")
    c.add_argument("--device", type=device_arg, default="cpu", help=DEVICE_HELP)

    pj = sub.add_parser(
        "project", help="how well each member reproduces an image, and which explains it best"
    )
    pj.add_argument("run", help=RUN_HELP)
    pj.add_argument("--image", required=True, help="an image file, or a folder of them")
    pj.add_argument(
        "--n-reference", type=int, default=32, help="held-out images that set the 'typical' error"
    )
    pj.add_argument("--json", action="store_true", help="print the numbers as JSON")
    pj.add_argument("--device", type=device_arg, default="cpu", help=DEVICE_HELP)

    ip = sub.add_parser(
        "interpolate", help="the latent path between two images, in the member that explains both best"
    )
    ip.add_argument("run", help=RUN_HELP)
    ip.add_argument("--from", dest="source", required=True, help="first image")
    ip.add_argument("--to", dest="target", required=True, help="last image")
    ip.add_argument("-o", "--output", default="interpolation.png", help="PNG grid to write")
    ip.add_argument("--steps", type=int, default=8, help="images along the path, ends included")
    ip.add_argument("--device", type=device_arg, default="cpu", help=DEVICE_HELP)

    ex = sub.add_parser(
        "export", help="write one member's generator as TorchScript (needs only torch to load)"
    )
    ex.add_argument("run", help=RUN_HELP)
    ex.add_argument("--member", required=True, help="the member to export (see its name in config.yaml)")
    ex.add_argument("-o", "--output", required=True, help="G.pt; its input shape goes to G.json beside it")
    ex.add_argument("--step", type=int, default=None, help=STEP_HELP)

    cf = sub.add_parser("configs", help="the example configs shipped with gensemble")
    cf.add_argument("action", choices=("list", "copy"), help="list them, or copy one")
    cf.add_argument("name", nargs="?", default=None, help="the example to copy (copy)")
    cf.add_argument(
        "dest", nargs="?", default=None, help="file or folder to copy it to (default ./NAME.yaml)"
    )


if "complete" in COMMANDS and add_parsers not in EXTRA_PARSERS:
    EXTRA_PARSERS.append(add_parsers)
