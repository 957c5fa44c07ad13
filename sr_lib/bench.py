"""`python -m sr_lib bench`: speed and memory ratios, all measured in one run on this machine.

* log-det: brute force (autograd Jacobian + slogdet) vs. the coupling's sum(s), at several input sizes;
* training step throughput (HR pixels per second): generator + discriminator (one SRGAN step) vs. the
  flow (one maximum-likelihood step) on the same crop and batch;
* inference seconds per output megapixel: bicubic, the generator (SR and SRGAN share it), flow sampling;
* memory: bytes of activations autograd saves during one training step (summed over the SRGAN step's
  two backward passes; what grows with batch and crop),
  and on a GPU the peak allocated memory of each step and of inference.
Weights are untrained: speed does not depend on their values.
"""
import torch
import torch.nn.functional as F

from .config import Config
from .imaging import degrade, upsample
from .invertibility import randomize_couplings
from .logdet import compare_logdet_cost
from .models import AffineCoupling, ConditionalFlow, Discriminator, Generator
from .timing import best_time
from .train import flow_step, srgan_step


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


def bench(cfg: Config, device: str = "cpu", batch: int = 4, crop: int | None = None, logdet_sides=(2, 4, 8, 12),
          repeats: int = 3) -> dict:
    device = torch.device(device)
    crop = crop or cfg.crop
    torch.manual_seed(0)
    hr = torch.rand(batch, 3, crop, crop, device=device)
    lr = degrade(hr)
    gen, disc = Generator(cfg).to(device), Discriminator(cfg).to(device)
    flow = randomize_couplings(ConditionalFlow(cfg)).to(device)
    opt_g, opt_d = torch.optim.Adam(gen.parameters()), torch.optim.Adam(disc.parameters())
    opt_f = torch.optim.Adam(flow.parameters())

    def gan_step():
        srgan_step(gen, disc, opt_g, opt_d, hr, lr, F.l1_loss, 5e-3)
        _sync(device)

    def flow_update():
        flow_step(flow, opt_f, hr, lr, clip=10.0)
        _sync(device)

    pixels = batch * crop * crop
    t_gan, t_flow = best_time(gan_step, repeats), best_time(flow_update, repeats)
    training = {"batch": batch, "crop": crop,
                "gan_hr_pixels_per_s": pixels / t_gan, "flow_hr_pixels_per_s": pixels / t_flow,
                "flow_over_gan_throughput": t_gan / t_flow,
                "gan_saved_activation_bytes": saved_activation_bytes(gan_step),
                "flow_saved_activation_bytes": saved_activation_bytes(flow_update),
                "gan_peak_bytes": _peak(device, gan_step), "flow_peak_bytes": _peak(device, flow_update)}
    training["flow_over_gan_activation_memory"] = (training["flow_saved_activation_bytes"]
                                                   / training["gan_saved_activation_bytes"])

    gen.eval(), flow.eval()
    lr_one = lr[:1]
    megapixels = crop * crop / 1e6

    def timed(fn):
        def run():
            with torch.no_grad():
                fn(lr_one)
            _sync(device)
        return best_time(run, repeats) / megapixels, _peak(device, run)

    inference = {}
    for name, fn in (("bicubic", upsample), ("generator", gen), ("flow_sample", lambda x: flow.sample(x, 0.8))):
        seconds, peak = timed(fn)
        inference[name] = {"seconds_per_megapixel": seconds, "peak_bytes": peak}
    for name in ("generator", "flow_sample"):
        inference[name]["slowdown_vs_bicubic"] = (inference[name]["seconds_per_megapixel"]
                                                  / inference["bicubic"]["seconds_per_megapixel"])
    inference["flow_over_generator"] = (inference["flow_sample"]["seconds_per_megapixel"]
                                        / inference["generator"]["seconds_per_megapixel"])

    coupling = AffineCoupling(12, cfg.flow_cond_channels, cfg.flow_hidden, cfg.flow_scale_clamp)
    torch.nn.init.normal_(coupling.rest[-1].weight, std=0.05)
    logdet = compare_logdet_cost(coupling, cfg.flow_cond_channels, list(logdet_sides), repeats)
    return {"config": cfg.name, "device": str(device), "torch_threads": torch.get_num_threads(),
            "logdet": logdet, "training": training, "inference": inference}


def format_bench(result: dict) -> str:
    tr, inf = result["training"], result["inference"]
    mib = 2 ** 20
    lines = [f"bench: config {result['config']!r} on {result['device']} ({result['torch_threads']} threads)",
             "log-det, brute force (autograd Jacobian + slogdet) vs. structured sum(s):"]
    lines += [f"  D = {r['dim']:5d}: {r['speed_ratio']:9.0f}x faster, |difference| {r['abs_difference']:.1e}"
              for r in result["logdet"]]
    lines += [f"training step, batch {tr['batch']} x {tr['crop']}x{tr['crop']} HR crops:",
              f"  generator + discriminator: {tr['gan_hr_pixels_per_s']:12,.0f} HR px/s, "
              f"activations kept {tr['gan_saved_activation_bytes'] / mib:8.1f} MiB",
              f"  flow:                      {tr['flow_hr_pixels_per_s']:12,.0f} HR px/s, "
              f"activations kept {tr['flow_saved_activation_bytes'] / mib:8.1f} MiB",
              f"  flow / GAN: {tr['flow_over_gan_throughput']:.2f}x the throughput, "
              f"{tr['flow_over_gan_activation_memory']:.2f}x the activation memory"]
    if tr["gan_peak_bytes"] is not None:
        lines.append(f"  peak GPU memory: GAN {tr['gan_peak_bytes'] / mib:.1f} MiB, flow {tr['flow_peak_bytes'] / mib:.1f} MiB")
    lines.append("inference, seconds per output megapixel:")
    for name in ("bicubic", "generator", "flow_sample"):
        row = inf[name]
        extra = f" ({row['slowdown_vs_bicubic']:.0f}x bicubic)" if "slowdown_vs_bicubic" in row else ""
        peak = f", peak {row['peak_bytes'] / mib:.1f} MiB" if row["peak_bytes"] is not None else ""
        lines.append(f"  {name:12} {row['seconds_per_megapixel']:10.4f}{extra}{peak}")
    lines.append(f"  flow sampling / generator: {inf['flow_over_generator']:.2f}x")
    return "\n".join(lines)
