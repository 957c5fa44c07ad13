"""Command line: ``python -m sr_lib COMMAND --help``."""
import argparse
import json
import sys

import torch

from .config import CONFIGS, get_config

DEFAULT_LR = {"sr": 2e-4, "srgan": 1e-4, "flow": 3e-4}


def _print_json(result: dict) -> None:
    json.dump(result, sys.stdout, indent=2)
    print()


def cmd_complexity(args) -> None:
    from .complexity import audit, format_audit
    result = audit(get_config(args.config))
    _print_json(result) if args.json else print(format_audit(result))


def cmd_check_flow(args) -> None:
    from .invertibility import check
    if args.checkpoint:  # a trained flow, checked as it is
        from .checkpoint import config_of, load_model
        flow, payload = load_model(args.checkpoint, "flow")
        result = check(config_of(payload), args.size, getattr(torch, args.dtype), flow=flow)
    else:
        result = check(get_config(args.config), args.size, getattr(torch, args.dtype))
    if args.json:
        _print_json(result)
        return
    for key, value in result.items():
        print(f"{key:38} {value}")


def cmd_train(args) -> None:
    from pathlib import Path

    from .train import TrainSettings, train
    settings = TrainSettings(args.method, get_config(args.config), Path(args.out), args.steps, data=args.data,
                             lr=args.lr if args.lr is not None else DEFAULT_LR[args.method], seed=args.seed,
                             resume=args.resume, content=args.content, device=args.device)
    print(f"wrote {train(settings)}")


def cmd_evaluate(args) -> None:
    from .evaluate import evaluate, format_table
    result = evaluate(args.checkpoints, args.data)
    if args.json:
        _print_json(result)
        return
    print(f"evaluation on {result['data']} ({', '.join(result['images'])}); checkpoints {result['checkpoints']}")
    print(format_table(result))


def cmd_compare(args) -> None:
    from .compare import compare, load_perceptual, markdown_table
    result = compare(args.out, args.checkpoints, args.data, load_perceptual(fid_dims=args.fid_dims))
    print(markdown_table(result))
    print(f"wrote comparison.png, perception_distortion.png, table.md, table.json to {args.out}")


def cmd_weights(args) -> None:
    from . import weights
    if args.fetch:
        for key in weights.WEIGHTS:
            print(f"fetching {key} ... {weights.fetch(key)}")
    for row in weights.status():
        state = "present" if row["present"] else "MISSING"
        print(f"{state:8} {row['file']:42} {row['used_by']}")
    print(f"folder: {weights.checkpoint_dir()}")


def cmd_bench(args) -> None:
    from .bench import bench, format_bench
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    result = bench(get_config(args.config), device, batch=args.batch, crop=args.crop)
    _print_json(result) if args.json else print(format_bench(result))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sr_lib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("complexity", help="parameters, MACs per HR pixel and measured receptive fields")
    p.add_argument("--config", choices=sorted(CONFIGS), default="paper")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_complexity)

    p = sub.add_parser("check-flow", help="numerical invertibility of the conditional flow")
    p.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    p.add_argument("--size", type=int, default=64, help="HR side in pixels (divisible by 4)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--checkpoint", help="a trained flow.pt to check instead of a randomised --config flow")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check_flow)

    p = sub.add_parser("train", help="train one method; checkpoints and loss history go to --out")
    p.add_argument("method", choices=["sr", "srgan", "flow"])
    p.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    p.add_argument("--data", default="bundled", help="'bundled' (offline photographs) or an image folder")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--out", required=True, help="folder for <method>.pt and <method>.history.json")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: per method)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--content", choices=["l1", "vgg"], default="l1", help="srgan content loss")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(func=cmd_train)

    from .evaluate import DEFAULT_CHECKPOINTS
    p = sub.add_parser("evaluate", help="PSNR, SSIM, LR-PSNR and diversity of every method on held-out images")
    p.add_argument("--checkpoints", default=str(DEFAULT_CHECKPOINTS), help="folder with sr.pt, srgan.pt, flow.pt")
    p.add_argument("--data", default="bundled-heldout", help="'bundled-heldout' or an image folder")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare", help="the full comparison report: figures, Markdown and JSON table")
    p.add_argument("--checkpoints", default=str(DEFAULT_CHECKPOINTS))
    p.add_argument("--data", default="bundled-heldout")
    p.add_argument("--out", required=True)
    p.add_argument("--fid-dims", type=int, default=2048, choices=[64, 192, 768, 2048],
                   help="Inception feature size for FID (2048 is the standard; smaller ones are labelled)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("bench", help="speed and memory ratios of GAN vs. flow, measured in one run")
    p.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--crop", type=int, default=None, help="HR crop side (default: the config's)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("weights", help="which pretrained backbone files are in torch hub's cache")
    p.add_argument("--fetch", action="store_true", help="download and verify the missing files (needs internet)")
    p.set_defaults(func=cmd_weights)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as error:  # bad input: say what is wrong, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
