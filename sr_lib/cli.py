"""Command line: ``python -m sr_lib COMMAND --help``."""
import argparse
import json
import os
import signal
import sys
import traceback
from pathlib import Path

import torch

from .config import CONFIGS, get_config
from .errors import Interrupted, UserError


def _print_json(result: dict) -> None:
    json.dump(result, sys.stdout, indent=2)
    print()


def _device(name: str) -> str:
    """The device, checked to exist before any work starts."""
    if name == "cpu":
        return name
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device {name!r} asked for, but no CUDA GPU is available here; use --device cpu")
        return name
    raise UserError(f"unknown device {name!r}; use cpu or cuda")


def cmd_complexity(args) -> None:
    from .complexity import audit, format_audit
    result = audit(get_config(args.config), check_memory=True)
    _print_json(result) if args.json else print(format_audit(result))


def cmd_check_flow(args) -> None:
    from . import memory
    from .invertibility import BATCH, check
    if args.size < 4 or args.size % 4:
        raise UserError(f"--size must be a positive multiple of 4, got {args.size}")
    flow = None
    if args.checkpoint:  # a trained flow, checked as it is
        from .checkpoint import load_model
        flow, payload = load_model(args.checkpoint, None)
        if not hasattr(flow, "inverse"):
            raise UserError(f"{args.checkpoint} holds a {payload['network']}, not an invertible network")
    cfg, dtype = (flow.config if flow else get_config(args.config)), getattr(torch, args.dtype)
    memory.require(memory.flow_pass_bytes(cfg, args.size, BATCH, dtype), f"check-flow --size {args.size} ({args.dtype})",
                   "give a smaller --size" + (" or --dtype float32" if args.dtype == "float64" else ""))
    result = check(cfg, args.size, dtype, flow=flow)
    if args.json:
        _print_json(result)
        return
    for key, value in result.items():
        print(f"{key:38} {value}")


def cmd_train(args) -> None:
    from .train import TrainSettings, train
    from .distributed import is_main
    hyper = {key: getattr(args, key) for key in args.method_settings if getattr(args, key) is not None}
    settings = TrainSettings(args.method, get_config(args.config), args.out, args.steps, hyper=hyper, data=args.data,
                             seed=args.seed, resume=args.resume, overwrite=args.overwrite,
                             device=_device(args.device), sync_batchnorm=args.sync_bn, save_every=args.save_every,
                             workers=args.workers, bf16=args.bf16, compile=args.compile)
    path = train(settings)
    if is_main():
        print(f"wrote {path}")


def cmd_evaluate(args) -> None:
    from .evaluate import evaluate, format_table, load_perceptual
    from .distributed import is_main
    try:
        result = evaluate(args.checkpoints, args.data, load_perceptual(), progress=True)
    except KeyboardInterrupt:
        raise Interrupted("interrupted; evaluate writes no files, nothing was kept") from None
    if not is_main():  # under torchrun every rank has the table; rank 0 prints it
        return
    if args.json:
        _print_json(result)
        return
    print(f"evaluation on {result['data']} ({len(result['images'])} images); checkpoints {result['checkpoints']}")
    if result["skipped"]:
        print(f"skipped (could not be decoded): {', '.join(result['skipped'])}")
    print(format_table(result))
    for name, reason in result["unavailable"].items():
        print(f"{name.upper()} unavailable: {reason}")


def cmd_report(args) -> None:
    from .evaluate import load_perceptual
    from .report import markdown_table, report
    from .distributed import is_main
    result = report(args.out, args.checkpoints, args.data, load_perceptual(fid_dims=args.fid_dims), progress=True,
                    overwrite=args.overwrite)
    if not is_main():
        return
    print(markdown_table(result))
    written = sorted(p.name for p in Path(args.out).iterdir())
    print(f"wrote {', '.join(written)} to {args.out}")


def _upscale_jobs(args) -> list[tuple[Path, str, float | None, int, Path]]:
    """(photo, method, temperature, seed, output path) for every output asked for, all checked first."""
    from .data import IMAGE_SUFFIXES, check_photo, frames
    from .files import writable_folder
    from .methods import METHODS
    from .models import check_temperature
    names = list(METHODS) if args.method == "all" else [args.method]
    if args.samples < 1:
        raise UserError(f"--samples must be >= 1, got {args.samples}")
    if args.tile < 16:
        raise UserError(f"--tile must be at least 16 LR pixels, got {args.tile}")
    check_temperature(args.temperature, "--temperature")
    if not 0 <= args.seed <= 2 ** 63 - args.samples:
        raise UserError(f"--seed must be in 0 .. 2**63 - {args.samples} (one seed per sample), got {args.seed}")
    photos = [Path(photo) for photo in args.images]
    for photo in photos:  # each exists, is a regular file and decodes whole, before any work
        check_photo(photo)
        if frames(photo) > 1:
            print(f"note: {photo} holds {frames(photo)} frames (animated or multi-page); upscaling the first")
    out = Path(args.out)
    if out.suffix.lower() in IMAGE_SUFFIXES - {".png"}:
        raise UserError(f"--out {out}: upscale writes PNG files; give a folder or a name ending in .png")
    jobs = []
    for photo in photos:
        for name in names:
            stochastic = METHODS[name].stochastic
            for k in range(args.samples if stochastic and args.temperature > 0 else 1):
                suffix = f"_T{args.temperature:g}" + (f"_{k + 1}" if args.samples > 1 and args.temperature > 0 else "")
                path = out / f"{photo.stem}_{name}{suffix if stochastic else ''}.png"
                jobs.append((photo, name, args.temperature if stochastic else None, args.seed + k, path))
    if out.suffix.lower() == ".png":
        if len(jobs) > 1:
            raise UserError(f"--out {out} names one file, but {len(jobs)} outputs are asked for; give a folder")
        jobs = [job[:4] + (out,) for job in jobs]
    writable_folder(jobs[0][4].parent)
    sources = {}
    for photo, *_, path in jobs:
        if sources.setdefault(path, photo) != photo:  # e.g. a/face.png and b/face.png
            raise UserError(f"{sources[path]} and {photo} would both be written to {path}; "
                             "upscale them into separate --out folders")
        if path.is_dir():
            raise UserError(f"--out {path} is a folder; give a folder for --out, or a .png file name")
        if path.exists() and not args.overwrite:
            raise UserError(f"{path} exists; pass --overwrite to replace it")
    return jobs


def cmd_upscale(args) -> None:
    from .checkpoint import load_model
    from .methods import METHODS
    from .upscale import upscale_photo, write_png
    device = _device(args.device)
    jobs = _upscale_jobs(args)
    models = {}
    for name in dict.fromkeys(job[1] for job in jobs):
        if METHODS[name].network is not None:
            path = Path(args.checkpoints) / f"{name}.pt"
            if not path.is_file():
                raise UserError(f"no {path}: train {name} (README) or pass --checkpoints with its folder")
            models[name] = load_model(path, name)[0].to(device)
    written = 0
    try:
        for photo, name, temperature, seed, path in jobs:
            array = upscale_photo(photo, models, name, temperature, seed, args.alpha, args.tile,
                                  progress=f"{photo.name} {name}")
            print(f"wrote {write_png(path, array, args.overwrite)} ({array.shape[1]}x{array.shape[0]})")
            written += 1
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; {written} of {len(jobs)} outputs were written (listed above), "
                          "none half-written") from None


def cmd_student(args) -> None:
    from .student import write_student_versions
    for name, count in write_student_versions(args.out, Path(args.notebooks)).items():
        print(f"wrote {Path(args.out) / name} ({count} exercises)")


def cmd_weights(args) -> None:
    from . import weights
    if args.fetch:
        from urllib.error import URLError
        for key in weights.WEIGHTS:
            name, url, _ = weights.WEIGHTS[key]
            try:
                print(f"fetching {key} ... {weights.fetch(key)}")
            except URLError as error:
                raise UserError(f"could not download {url} ({error.reason}); without internet, copy {name} "
                                 f"into {weights.hub_checkpoints()} by hand") from error
    for key, (name, _, used_by) in weights.WEIGHTS.items():
        state = "present" if (weights.hub_checkpoints() / name).is_file() else "MISSING"
        print(f"{state:8} {name:42} {used_by}")
    print(f"folder: {weights.hub_checkpoints()}")


def cmd_bench(args) -> None:
    from .bench import bench, format_bench
    if args.batch is not None and args.batch < 1:
        raise UserError(f"--batch must be >= 1, got {args.batch}")
    if args.crop is not None and (args.crop < 16 or args.crop % 4):
        raise UserError(f"--crop must be a multiple of 4 and at least 16 HR pixels, got {args.crop}")
    if not 0 < args.min_run_time <= 60:
        raise UserError(f"--min-run-time must be in (0, 60] seconds, got {args.min_run_time}")
    device = _device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    result = bench(get_config(args.config), device, batch=args.batch, crop=args.crop, compiled=args.compile,
                   min_run_time=args.min_run_time)
    _print_json(result) if args.json else print(format_bench(result))


def _add_method_settings(parser, methods: list[str]) -> list[str]:
    """One flag for each field of the methods' training settings (`Settings` in methods/<name>.py), unset
    by default (the method's value); returns the fields' names."""
    from dataclasses import fields
    from .methods import METHODS
    owners = {}  # {field: [(method, its default), ...]}
    for name in methods:
        for f in fields(METHODS[name].trainer.Settings):
            owners.setdefault(f.name, []).append((name, f.default))
    for key, defaults in owners.items():
        parser.add_argument("--" + key.replace("_", "-"), dest=key, type=str if isinstance(defaults[0][1], str) else float, default=None,
                            help=f"default: {', '.join(f'{m} {d}' for m, d in defaults)} (methods/<name>.py says why)")
    return list(owners)


def build_parser() -> argparse.ArgumentParser:
    from .checkpoint import DEFAULT_CHECKPOINTS
    from .methods import METHODS, STUDY_TEMPERATURE, trainable
    from .perceptual import FID_SIZES, FID_STANDARD
    from .upscale import DEFAULT_TILE
    parser = argparse.ArgumentParser(prog="python -m sr_lib", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the traceback of a user error too")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: OMP_NUM_THREADS, else the CPUs this process may use; "
                             "on a busy shared machine 1 is often fastest, see README)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("complexity", help="parameters, MACs per HR pixel and measured receptive fields")
    p.add_argument("--config", choices=sorted(CONFIGS), default="cpu",
                   help="'paper' probes the study-size flow in float64: about 2 minutes and 14 GB of memory")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_complexity)

    p = sub.add_parser("check-flow", help="numerical invertibility of the conditional flow")
    p.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    p.add_argument("--size", type=int, default=64, help="HR side in pixels (divisible by 4)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--checkpoint", help="a trained flow.pt to check instead of a randomised --config flow")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check_flow)

    p = sub.add_parser("train", help="train one method; checkpoints and loss history go to --out "
                                      "(several processes: torchrun --nproc_per_node N -m sr_lib train ...)")
    p.add_argument("method", choices=trainable())
    p.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    p.add_argument("--data", default="bundled", help="'bundled' (offline photographs) or an image folder")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--out", required=True, help="folder for <method>.pt and <method>.history.json")
    p.add_argument("--seed", type=int, default=0)
    method_settings = _add_method_settings(p, trainable())
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--overwrite", action="store_true", help="start again although --out holds a checkpoint")
    p.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun: each rank its own GPU)")
    p.add_argument("--save-every", type=int, default=200, help="write the checkpoint every N steps (and at the end)")
    p.add_argument("--bf16", action="store_true", help="sr and srgan: forward passes in bfloat16 autocast")
    p.add_argument("--compile", action="store_true",
                   help="compile the loss of each step (its forward passes) with torch.compile (about 30 s first); the flow only")
    p.add_argument("--workers", type=int, default=0,
                   help="with --data FOLDER: decode images on the fly in N processes instead of loading the folder")
    p.add_argument("--sync-bn", action="store_true",
                   help="under torchrun on GPUs: BatchNorm statistics over the global batch (see distributed.py)")
    p.set_defaults(func=cmd_train, method_settings=method_settings)

    p = sub.add_parser("evaluate", help="every measure of every method on the evaluation images "
                                         "(several processes: torchrun --nproc_per_node N -m sr_lib evaluate ...)")
    p.add_argument("--checkpoints", default=str(DEFAULT_CHECKPOINTS), help="folder with the methods' <name>.pt")
    p.add_argument("--data", default="bundled-heldout", help="'bundled-heldout' or an image folder (used whole)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="the comparison report: figures, Markdown and JSON table")
    p.add_argument("--checkpoints", default=str(DEFAULT_CHECKPOINTS))
    p.add_argument("--data", default="bundled-heldout")
    p.add_argument("--out", required=True, help="a new or empty folder, or a report's folder with --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace the report already in --out")
    p.add_argument("--fid-dims", type=int, default=FID_STANDARD, choices=FID_SIZES,
                   help="Inception feature size for FID (2048 is the standard; smaller ones are labelled)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("bench", help="speed and memory ratios of the methods, measured in one run")
    p.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--batch", type=int, default=None, help="training batch (default: the config's)")
    p.add_argument("--crop", type=int, default=None, help="HR crop side (default: the config's)")
    p.add_argument("--compile", action="store_true",
                   help="also time compiled the training step of every method that allows train --compile")
    p.add_argument("--min-run-time", type=float, default=1.0,
                   help="seconds each timing block runs at least (smaller: quicker, noisier ratios)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("upscale", help="super-resolve your own photos 4x (any size: tiled) to PNG")
    p.add_argument("images", nargs="+", help="photo files (PNG, JPEG, TIFF, ...; 8/16-bit, grayscale, RGBA, CMYK)")
    p.add_argument("--method", choices=[*METHODS, "all"], default="all")
    p.add_argument("--temperature", type=float, default=STUDY_TEMPERATURE, help="the flow's latent temperature")
    p.add_argument("--samples", type=int, default=1, help="flow samples per photo (seeds --seed, --seed + 1, ...)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoints", default=str(DEFAULT_CHECKPOINTS))
    p.add_argument("--out", required=True, help="a folder (one PNG per photo and method) or a .png for one output")
    p.add_argument("--alpha", choices=["keep", "drop"], default="keep",
                   help="a transparent photo's alpha: upscaled bicubically and kept, or dropped")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE, help="LR tile side: smaller uses less memory")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(func=cmd_upscale)

    p = sub.add_parser("student", help="student versions of the notebooks: exercise solutions removed (nbgrader)")
    p.add_argument("--out", required=True, help="folder for the student notebooks")
    p.add_argument("--notebooks", default=str(Path(__file__).resolve().parents[1] / "notebooks"),
                   help="folder of the instructor notebooks (default: this project's)")
    p.set_defaults(func=cmd_student)

    p = sub.add_parser("weights", help="which pretrained backbone files are in torch hub's cache")
    p.add_argument("--fetch", action="store_true", help="download and verify the missing files (needs internet)")
    p.set_defaults(func=cmd_weights)
    return parser


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM ends a command as Ctrl-C does: cleanly, saying what was kept


def main(argv: list[str] | None = None) -> int:
    from .threads import use_threads
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        use_threads(args.threads)
        args.func(args)
    except Interrupted as stop:
        print(f"\n{stop}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\ninterrupted; no file was half-written", file=sys.stderr)
        return 130
    except (UserError, OSError) as error:  # bad input, missing or unwritable files: say what, no traceback;
        # any other exception is a bug of the library and keeps its traceback
        if args.debug:
            traceback.print_exc()
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
