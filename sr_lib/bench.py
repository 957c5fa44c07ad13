"""`python -m sr_lib bench`: speed and memory ratios of the methods, all measured in one run on this machine.

* log-det: brute force (autograd Jacobian + slogdet) vs. the coupling's sum(s), at several input sizes;
* one training step of every trainable method (`methods.METHODS`) on the same crops: HR pixels per
  second and the bytes of activations autograd keeps for the backward pass (what grows with batch and
  crop; the adversarial step counts both of its backward passes), relative to the first method's;
* inference seconds per output megapixel of every method at a 256 px output, relative to bicubic;
* on a GPU, the peak allocated memory of each;
* on a CPU, the first method's training step with one thread against the default thread count
  (`threads.py`), the two interleaved over several rounds: on a machine whose other cores are busy one
  thread can be the faster.
Weights are untrained: speed does not depend on their values. Timings are medians of
`torch.utils.benchmark` blocks, the methods measured one after another in the same run.
"""
import torch
import torch.nn.functional as F

from .config import Config
from .imaging import degrade
from .invertibility import randomize_couplings
from .logdet import compare_logdet_cost
from .methods import METHODS, STUDY_TEMPERATURE
from .models import AffineCoupling, build
from .timing import seconds
from .train import adversarial_step, guarded_step


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


def training_step(name: str, cfg: Config, hr: torch.Tensor, lr: torch.Tensor):
    """A callable doing one training update of method `name` (its objective's loss and optimizer step)."""
    method = METHODS[name]
    net = build(method.network, cfg).to(hr.device)
    if method.network == "flow":
        randomize_couplings(net)  # zero-initialised outputs would skip part of the backward pass
        if method.starts_from:  # as in training: the base generator is frozen
            net.freeze_base(net.base.state_dict())
    opt = torch.optim.Adam(net.parameters())
    if method.objective == "adversarial":
        disc = build("discriminator", cfg).to(hr.device)
        opt_d = torch.optim.Adam(disc.parameters())
        return lambda: adversarial_step(net, disc, opt, opt_d, hr, lr, F.l1_loss, method.adv_weight, method.clip)
    if method.objective == "likelihood":
        return lambda: guarded_step(opt, net.bits_per_dim(hr, lr).mean(), net.parameters(), method.clip)
    return lambda: guarded_step(opt, F.l1_loss(net(lr), hr), net.parameters(), method.clip)


def thread_scaling(step, threads: int, rounds: int = 3, min_run_time: float = 0.5) -> dict:
    """Seconds of step() with 1 and with `threads` threads, alternating, `rounds` times each: the median
    and the spread (max / min) of each, and the speed-up of `threads` over one."""
    times = {1: [], threads: []}
    try:
        for _ in range(rounds):
            for n in times:
                torch.set_num_threads(n)
                times[n].append(seconds(step, min_run_time))
    finally:
        torch.set_num_threads(threads)
    median = {n: sorted(t)[len(t) // 2] for n, t in times.items()}
    return {"threads": threads, "seconds_one_thread": median[1], "seconds_default": median[threads],
            "speedup_default_vs_one": median[1] / median[threads],
            "spread": {str(n): max(t) / min(t) for n, t in times.items()}}


def bench(cfg: Config, device: str = "cpu", batch: int = 4, crop: int | None = None, logdet_sides=(2, 4, 8, 12),
          output_side: int = 256, min_run_time: float = 1.0) -> dict:
    device = torch.device(device)
    crop = crop or cfg.crop
    torch.manual_seed(0)
    hr = torch.rand(batch, 3, crop, crop, device=device)
    lr = degrade(hr)

    training, first, first_name = {}, None, None
    for name, method in METHODS.items():
        if method.objective is None:
            continue
        step = training_step(name, cfg, hr, lr)

        def synced(step=step):
            step()
            _sync(device)
        t = seconds(synced, min_run_time)
        training[name] = {"hr_pixels_per_s": batch * crop * crop / t, "saved_activation_bytes": saved_activation_bytes(step),
                          "peak_bytes": _peak(device, synced)}
        first = first or training[name]
        first_name = first_name or name
        training[name]["throughput_vs_first"] = training[name]["hr_pixels_per_s"] / first["hr_pixels_per_s"]
        training[name]["activations_vs_first"] = (training[name]["saved_activation_bytes"]
                                                  / first["saved_activation_bytes"])

    threads = torch.get_num_threads()
    scaling = (thread_scaling(training_step(first_name, cfg, hr, lr), threads)
               if device.type == "cpu" and threads > 1 else None)

    lr_one = torch.rand(1, 3, output_side // 4, output_side // 4, device=device)
    inference = {}
    for name, method in METHODS.items():
        model = build(method.network, cfg).to(device).eval() if method.network else None
        t = STUDY_TEMPERATURE if method.stochastic else None

        def run(method=method, model=model, t=t):
            with torch.no_grad():
                method.run(model, lr_one, t, None)
            _sync(device)
        inference[name] = {"seconds_per_megapixel": seconds(run, min_run_time) / (output_side ** 2 / 1e6),
                           "peak_bytes": _peak(device, run)}
    for row in inference.values():
        row["vs_bicubic"] = row["seconds_per_megapixel"] / inference["bicubic"]["seconds_per_megapixel"]

    coupling = AffineCoupling(12, cfg.gen_channels, cfg.flow_hidden, cfg.flow_scale_clamp)
    torch.nn.init.normal_(coupling.out.weight, std=0.05)
    logdet = compare_logdet_cost(coupling, cfg.gen_channels, list(logdet_sides))
    return {"config": cfg.name, "device": str(device), "torch_threads": torch.get_num_threads(),
            "batch": batch, "crop": crop, "output_side": output_side,
            "logdet": logdet, "training": training, "thread_scaling": scaling, "inference": inference}


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
        lines.append(f"  {METHODS[name].label:14} {row['hr_pixels_per_s']:12,.0f} HR px/s ({row['throughput_vs_first']:.2f}x), "
                     f"activations kept {row['saved_activation_bytes'] / mib:7.1f} MiB "
                     f"({row['activations_vs_first']:.2f}x){peak}")
    scaling = result["thread_scaling"]
    if scaling:
        lines.append(f"  {METHODS[first].label} step with {scaling['threads']} threads vs. 1: "
                     f"{scaling['speedup_default_vs_one']:.2f}x as fast (spread over rounds "
                     + ", ".join(f"{n} thr {v:.2f}" for n, v in scaling["spread"].items())
                     + "; below 1: other jobs share these cores, use --threads 1)")
    lines.append(f"inference at a {result['output_side']} px output, seconds per output megapixel:")
    for name, row in result["inference"].items():
        peak = f", peak {row['peak_bytes'] / mib:.1f} MiB" if row["peak_bytes"] is not None else ""
        lines.append(f"  {METHODS[name].label:14} {row['seconds_per_megapixel']:10.4f} ({row['vs_bicubic']:.0f}x bicubic){peak}")
    return "\n".join(lines)
