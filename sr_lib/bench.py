"""`python -m sr_lib bench`: speed and memory ratios of the methods, all measured in one run on this machine.

* log-det: brute force (autograd Jacobian + slogdet) vs. the coupling's sum(s), at several input sizes;
* one training step of every trainable method (`methods.METHODS`) on the same crops: HR pixels per
  second and the bytes of activations autograd keeps for the backward pass (what grows with batch and
  crop; the adversarial step counts both of its backward passes), relative to the first method's;
  and its *efficiency*: the multiply-accumulates the step does (forward and backward, as
  `torch.utils.flop_counter` counts them), per second, over the rate of a large 64-channel 3x3
  convolution in its fastest memory format (`reference_conv`): 1 would be every layer as fast as the
  best-case convolution; beside it, what the generator's convolutions alone reach, forward and backward
  at their training shapes (`generator_convs`): the ceiling the study's layer shapes put on SR's step
  however little everything else cost (SRGAN's step also runs the discriminator's convolutions). The
  steps and the references are timed interleaved, round after round, and each reports its median and
  spread (max / min over rounds), so another job slowing the machine for a while slows all of them, not one;
* inference seconds per output megapixel of every method at a 256 px output, relative to bicubic;
* interactive use, over one generator forward on the same 64 px LR image (`interactive`): K = 4 draws of
  one image by the first stochastic method (the flow) with what they share computed once
  (`Method.prepare`) and, beside them, K draws each recomputing it (the path before); notebook 05's
  temperature scrubber, one slider move, until its new sample is shown and until its diversity over 4
  draws is;
* on a GPU, the peak allocated memory of each;
* on a CPU, the first method's training step with one thread against the default thread count
  (`threads.py`), the two interleaved over several rounds: on a machine whose other cores are busy one
  thread can be the faster.
Weights are untrained: speed does not depend on their values. Timings are medians of
`torch.utils.benchmark` blocks, the methods measured one after another in the same run.
"""
import contextlib
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import Config
from .imaging import degrade
from .logdet import compare_logdet_cost
from .methods import METHODS, STUDY_TEMPERATURE, build
from .methods.flow import AffineCoupling
from .timing import seconds
from .train import MEMORY_FORMAT, optimizers


def saved_activation_bytes(step) -> int:
    """Bytes of the tensors autograd saves for backward during step() (the activation memory of training)."""
    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return total


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak(device, fn) -> int | None:
    if device.type != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    _sync(device)
    return torch.cuda.max_memory_allocated(device)


def untrained(net: torch.nn.Module, std: float = 0.02, seed: int = 0) -> torch.nn.Module:
    """Every parameter tensor that is all zeros re-drawn at random, in place: a zero-initialised output
    layer (the flow's couplings and injectors) would skip part of the work that a trained network does."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.copy_(std * torch.randn(p.shape, generator=gen))
    return net


def training_step(name: str, cfg: Config, hr: torch.Tensor, lr: torch.Tensor, compiled: bool = False):
    """A callable doing one training update of method `name` with its defaults: its trainer's own `update`,
    as `train` runs it, in the memory order training uses, on freshly built networks (the network a
    method starts from, randomly initialised); compiled=True: the loss through torch.compile, as `train
    --compile` runs it."""
    method = METHODS[name]
    hr, lr = (t.contiguous(memory_format=MEMORY_FORMAT) for t in (hr, lr))
    start = build(METHODS[method.starts_from].network, cfg) if method.starts_from else None
    trainer = method.trainer(cfg, method.settings(), start).to(hr.device, MEMORY_FORMAT)
    for net in trainer.trained.values():
        untrained(net).train()
    parallel = {key: torch.compile(m) if compiled else m for key, m in trainer.objectives().items()}
    opts = optimizers(trainer)

    def step():
        return trainer.update(parallel, opts, hr, lr, contextlib.nullcontext)
    return step


def interleaved(candidates: dict, rounds: int = 3, min_run_time: float = 0.3, threads: dict | None = None) -> dict:
    """{name: (median seconds, spread = max / min)} of each callable, timed in turn, `rounds` times;
    `threads`: the thread count to time each name with (default: the current one)."""
    current = torch.get_num_threads()
    times = {name: [] for name in candidates}
    try:
        for _ in range(rounds):
            for name, fn in candidates.items():
                torch.set_num_threads((threads or {}).get(name, current))
                times[name].append(seconds(fn, min_run_time))
    finally:
        torch.set_num_threads(current)
    return {name: (sorted(t)[len(t) // 2], max(t) / min(t)) for name, t in times.items()}


def thread_scaling(step, threads: int, rounds: int = 3, min_run_time: float = 0.5) -> dict:
    """step() timed with 1 and with `threads` threads, alternating: each one's median and spread (max /
    min over rounds), and the speed-up of `threads` over one."""
    timed = interleaved({"one": step, "default": step}, rounds, min_run_time, threads={"one": 1, "default": threads})
    return {"threads": threads, "seconds_one_thread": timed["one"][0], "seconds_default": timed["default"][0],
            "speedup_default_vs_one": timed["one"][0] / timed["default"][0],
            "spread": {"1": timed["one"][1], str(threads): timed["default"][1]}}


def step_macs(step) -> int:
    """Multiply-accumulates of one call of a training step, forward and backward (the flop counter counts
    2 FLOPs per MAC)."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops() // 2


def reference_conv(device: torch.device):
    """(callable, MACs per call, memory format): a 64 -> 64 3x3 convolution on (8, 64, 64, 64), in the
    faster of the contiguous and channels_last formats (measured here)."""
    batch, side, channels = 8, 64, 64
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1).to(device)
    macs = batch * side * side * channels * channels * 9
    options = {}
    for fmt in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(batch, channels, side, side, device=device).to(memory_format=fmt)
        layer = conv.to(memory_format=fmt)

        def run(layer=layer, x=x):
            with torch.no_grad():
                layer(x)
            _sync(device)
        options[str(fmt).replace("torch.", "")] = (seconds(run, 0.2), run)
    best = min(options, key=lambda f: options[f][0])
    return options[best][1], macs, best


COMPILED = ", compiled"  # the suffix of a compiled step's name


def _label(name: str) -> str:
    method = name.removesuffix(COMPILED)
    return METHODS[method].label + name[len(method):]


def generator_convs(cfg: Config, lr: torch.Tensor):
    """A callable running every convolution of the generator, forward and backward, each on an input of
    the shape it sees in training, with the gradients training needs (the weights', and the input's except
    for the first conv, whose input is the LR image); nothing else."""
    gen = build("generator", cfg).to(lr.device, memory_format=MEMORY_FORMAT)
    inputs = []
    hooks = [m.register_forward_hook(lambda m, i, o: inputs.append((m, torch.rand_like(i[0]))))
             for m in gen.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        gen(lr.contiguous(memory_format=MEMORY_FORMAT))
    for hook in hooks:
        hook.remove()
    inputs = [(m, x.requires_grad_(i > 0)) for i, (m, x) in enumerate(inputs)]

    def run():
        for m, x in inputs:
            x.grad = None
            m.zero_grad(set_to_none=True)  # nothing accumulates across calls
            y = m(x)
            y.backward(torch.ones_like(y))
        _sync(lr.device)
    return run


def bench(cfg: Config, device: str = "cpu", batch: int | None = None, crop: int | None = None,
          logdet_sides=(2, 4, 8, 12), output_side: int = 256, min_run_time: float = 1.0,
          compiled: bool = False) -> dict:
    """Every measurement of the module docstring, for training steps of `batch` crops of `crop` px (default:
    the configuration's, what training runs). compiled=True also times, compiled (`train --compile`), the
    step of every method whose trainer does not refuse it, after one call that compiles it (its seconds
    are reported)."""
    device = torch.device(device)
    batch, crop = batch or cfg.batch, crop or cfg.crop
    torch.manual_seed(0)
    hr = torch.rand(batch, 3, crop, crop, device=device)
    lr = degrade(hr)

    steps = {}
    for name, method in METHODS.items():
        if method.trainer is None:
            continue
        step = training_step(name, cfg, hr, lr)

        def synced(step=step):
            step()
            _sync(device)
        steps[name] = synced
    compile_seconds = {}
    for name in [name for name in steps if compiled and "compile" not in METHODS[name].trainer.refuses]:
        step = training_step(name, cfg, hr, lr, compiled=True)
        start = time.perf_counter()
        step()
        compile_seconds[name + COMPILED] = time.perf_counter() - start
        steps[name + COMPILED] = lambda step=step: (step(), _sync(device))
    conv, conv_macs, conv_format = reference_conv(device)
    convs = generator_convs(cfg, lr)
    timed = interleaved({"reference conv": conv, "generator convs": convs, **steps}, min_run_time=min_run_time / 3)
    conv_rate = conv_macs / timed["reference conv"][0]
    training, first_name = {}, next(iter(steps))
    for name, synced in steps.items():
        t, spread = timed[name]
        eager = name in METHODS  # a compiled step's kernels are not aten ops to count: its eager step's MACs
        training[name] = {"hr_pixels_per_s": batch * crop * crop / t, "spread": spread,
                          "saved_activation_bytes": saved_activation_bytes(synced) if eager else None,
                          "macs_per_step": step_macs(synced) if eager else training[name.removesuffix(COMPILED)]["macs_per_step"],
                          "peak_bytes": _peak(device, synced)}
        training[name]["efficiency"] = training[name]["macs_per_step"] / t / conv_rate
    first = training[first_name]
    for row in training.values():
        row["throughput_vs_first"] = row["hr_pixels_per_s"] / first["hr_pixels_per_s"]
        row["activations_vs_first"] = (row["saved_activation_bytes"] / first["saved_activation_bytes"]
                                       if row["saved_activation_bytes"] is not None else None)
    reference = {"macs_per_s": conv_rate, "memory_format": conv_format, "spread": timed["reference conv"][1],
                 "generator_convs_vs_reference": step_macs(convs) / timed["generator convs"][0] / conv_rate}

    threads = torch.get_num_threads()
    scaling = (thread_scaling(steps[first_name], threads)
               if device.type == "cpu" and threads > 1 else None)

    lr_one = torch.rand(1, 3, output_side // 4, output_side // 4, device=device)
    inference = {}
    for name, method in METHODS.items():
        model = untrained(build(method.network, cfg)).to(device).eval() if method.network else None
        t = STUDY_TEMPERATURE if method.stochastic else None

        def run(method=method, model=model, t=t):
            with torch.no_grad():
                method.run(model, lr_one, t, None)
            _sync(device)
        inference[name] = {"seconds_per_megapixel": seconds(run, min_run_time) / (output_side ** 2 / 1e6),
                           "peak_bytes": _peak(device, run)}
    baseline = next(iter(inference))  # the table's first method, the one without weights
    for row in inference.values():
        row["vs_baseline"] = row["seconds_per_megapixel"] / inference[baseline]["seconds_per_megapixel"]

    coupling = AffineCoupling(12, cfg.gen_channels, cfg.flow_hidden, cfg.flow_scale_clamp)
    torch.nn.init.normal_(coupling.out.weight, std=0.05)
    logdet = compare_logdet_cost(coupling, cfg.gen_channels, list(logdet_sides))
    return {"config": cfg.name, "device": str(device), "torch_threads": torch.get_num_threads(),
            "batch": batch, "crop": crop, "output_side": output_side,
            "logdet": logdet, "reference_conv": reference, "training": training, "thread_scaling": scaling,
            "compile_seconds": compile_seconds,
            "inference": inference, "interactive": interactive(cfg, device, min_run_time / 3)}


def interactive(cfg: Config, device, min_run_time: float = 0.3, draws: int = 4) -> dict:
    """Seconds of the interactive paths over one generator forward on the same LR image (64 px, a 256 px
    output), timed interleaved (median, spread): see the module docstring."""
    from .widgets import TemperatureScrubber
    models = {name: untrained(build(m.network, cfg)).to(device).eval() if m.network else None for name, m in METHODS.items()}
    sampled = next(name for name, m in METHODS.items() if m.stochastic)  # what the scrubber draws
    reference = next(name for name, m in METHODS.items() if m.network and not m.stochastic)  # the generator
    method, model, generator = METHODS[sampled], models[sampled], models[reference]
    hr = torch.rand(3, 256, 256, generator=torch.Generator().manual_seed(0)).to(device)
    lr = degrade(hr[None])
    scrubber = TemperatureScrubber(models, {"face": hr})
    shown = []
    scrubber.flow_image.observe(lambda _: shown.append(time.perf_counter()), names="value")
    first_sample = []

    def move():
        shown.clear()
        start = time.perf_counter()
        scrubber.slider.value = 1.0 if scrubber.slider.value != 1.0 else STUDY_TEMPERATURE  # observers refresh
        first_sample.append(shown[0] - start)

    def gen_forward():
        with torch.no_grad():
            generator(lr)
        _sync(device)

    def k_draws(prepared: bool):
        def run():
            with torch.no_grad():
                gen = torch.Generator(device=device).manual_seed(0)
                if prepared:
                    method.draws(model, lr, STUDY_TEMPERATURE, draws, gen)
                else:
                    for _ in range(draws):
                        method.run(model, lr, STUDY_TEMPERATURE, gen)
            _sync(device)
        return run

    timed = interleaved({"generator forward": gen_forward, "draws": k_draws(True),
                         "draws, base each time": k_draws(False), "scrubber move": move}, min_run_time=min_run_time)
    unit = timed["generator forward"][0]
    return {"generator_forward_seconds": unit, "draws": draws,
            "sampled": sampled, "draws_vs_generator": timed["draws"][0] / unit,
            "draws_recomputing_base_vs_generator": timed["draws, base each time"][0] / unit,
            "scrubber_move_vs_generator": timed["scrubber move"][0] / unit,
            "scrubber_first_sample_vs_generator": sorted(first_sample)[len(first_sample) // 2] / unit,
            "spread": {name: spread for name, (_, spread) in timed.items()}}


def format_bench(result: dict) -> str:
    mib = 2 ** 20
    lines = [f"bench: config {result['config']!r} on {result['device']} ({result['torch_threads']} threads)",
             "log-det, brute force (autograd Jacobian + slogdet) vs. structured sum(s):"]
    lines += [f"  D = {r['dim']:5d}: {r['speed_ratio']:9.0f}x faster, |difference| {r['abs_difference']:.1e}"
              for r in result["logdet"]]
    first = next(iter(result["training"]))
    lines.append(f"training step, batch {result['batch']} x {result['crop']}x{result['crop']} HR crops "
                 f"(ratios vs. {METHODS[first].label}):")
    for name, row in result["training"].items():
        peak = f", peak {row['peak_bytes'] / mib:.1f} MiB" if row["peak_bytes"] is not None else ""
        eager = name.removesuffix(COMPILED)
        kept = (f"activations kept {row['saved_activation_bytes'] / mib:7.1f} MiB ({row['activations_vs_first']:.2f}x)"
                if row["saved_activation_bytes"] is not None else
                f"compiled in {result['compile_seconds'][name]:.0f} s, "
                f"{row['hr_pixels_per_s'] / result['training'][eager]['hr_pixels_per_s']:.2f}x the eager step")
        lines.append(f"  {_label(name):14} {row['hr_pixels_per_s']:12,.0f} HR px/s ({row['throughput_vs_first']:.2f}x, "
                     f"spread {row['spread']:.2f}), {kept}{peak}")
    ref = result["reference_conv"]
    lines.append(f"efficiency (MACs per second of the step, forward + backward, over a 64-channel 3x3 conv's "
                 f"{ref['macs_per_s'] / 1e9:.0f} GMAC/s in {ref['memory_format']}):")
    lines += [f"  {_label(name):14} {row['efficiency']:.2f}" for name, row in result["training"].items()]
    lines.append(f"  (the generator's convolutions alone, forward and backward at these shapes: "
                 f"{ref['generator_convs_vs_reference']:.2f})")
    scaling = result["thread_scaling"]
    if scaling:
        lines.append(f"  {METHODS[first].label} step with {scaling['threads']} threads vs. 1: "
                     f"{scaling['speedup_default_vs_one']:.2f}x as fast (spread over rounds "
                     + ", ".join(f"{n} thr {v:.2f}" for n, v in scaling["spread"].items())
                     + "; below 1: other jobs share these cores, use --threads 1)")
    lines.append(f"inference at a {result['output_side']} px output, seconds per output megapixel:")
    baseline = METHODS[next(iter(result["inference"]))].label
    for name, row in result["inference"].items():
        peak = f", peak {row['peak_bytes'] / mib:.1f} MiB" if row["peak_bytes"] is not None else ""
        lines.append(f"  {METHODS[name].label:14} {row['seconds_per_megapixel']:10.4f} ({row['vs_baseline']:.0f}x {baseline}){peak}")
    act = result["interactive"]
    lines += [f"interactive, over one generator forward on a 64 px LR image ({act['generator_forward_seconds'] * 1e3:.0f} ms):",
              f"  {act['draws']} {METHODS[act['sampled']].label} draws, prepared once {act['draws_vs_generator']:5.2f}x "
              f"(prepared each time: {act['draws_recomputing_base_vs_generator']:.2f}x)",
              f"  scrubber move, sample shown   {act['scrubber_first_sample_vs_generator']:5.2f}x "
              f"(with its diversity over {act['draws']} draws: {act['scrubber_move_vs_generator']:.2f}x)"]
    return "\n".join(lines)
