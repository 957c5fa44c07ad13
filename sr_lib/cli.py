"""Command line: ``python -m sr_lib COMMAND --help``."""
import argparse
import json
import sys

import torch

from .config import CONFIGS, get_config


def _print_json(result: dict) -> None:
    json.dump(result, sys.stdout, indent=2)
    print()


def cmd_complexity(args) -> None:
    from .complexity import audit, format_audit
    result = audit(get_config(args.config))
    _print_json(result) if args.json else print(format_audit(result))


def cmd_check_flow(args) -> None:
    from .invertibility import check
    result = check(get_config(args.config), args.size, getattr(torch, args.dtype))
    if args.json:
        _print_json(result)
        return
    for key, value in result.items():
        print(f"{key:38} {value}")


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
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check_flow)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ValueError as error:  # bad input: say what is wrong, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
