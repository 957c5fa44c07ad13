"""Figures shared by the notebooks and the report: image rows with zoomed crops, loss curves, the
perception-distortion plane and the side-by-side comparison.

Images are shown at integer zoom with nearest-neighbour interpolation so pixels stay visible, on a
neutral grey background that reads in light and dark themes.
"""
import matplotlib.pyplot as plt
import numpy as np
import torch

BACKGROUND = "#808080"
DPI = 110  # figures are saved (report) and shown (notebooks) at this resolution


def to_numpy(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (1, 3, H, W) tensor in [0, 1] -> HxWx3 float array."""
    image = image.detach().squeeze(0) if image.dim() == 4 else image.detach()
    return image.clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def crop(image: torch.Tensor, top: int, left: int, size: int) -> torch.Tensor:
    """The size x size square at (top, left) of a (…, H, W) tensor, checked to lie inside it."""
    h, w = image.shape[-2:]
    if size < 1 or not (0 <= top <= h - size and 0 <= left <= w - size):
        raise ValueError(f"crop {size}x{size} at ({top}, {left}) does not fit a {h}x{w} image")
    return image[..., top:top + size, left:left + size]


def zoom(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor."""
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


def image_rows(rows: dict[str, dict[str, torch.Tensor]], boxes: dict[str, tuple[int, int, int]] | None = None,
               crop_zoom: int = 4, scale: float = 2.6):
    """One row per image, one column per method; with boxes[image] = (top, left, size) a second, zoomed row.

    rows: {image name: {method label: (3, H, W) tensor}}. Returns the matplotlib figure.
    """
    boxes = {name: box for name, box in (boxes or {}).items() if name in rows}
    n_rows = sum(2 if name in boxes else 1 for name in rows)
    n_cols = max(len(methods) for methods in rows.values())
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(scale * n_cols, scale * n_rows), squeeze=False,
                             facecolor=BACKGROUND)
    r = 0
    for image_name, methods in rows.items():
        box = boxes.get(image_name)
        for c, (label, image) in enumerate(methods.items()):
            axes[r, c].imshow(to_numpy(image), interpolation="nearest")
            axes[r, c].set_title(f"{label}", fontsize=9, color="white", backgroundcolor="#333333")
            if box:
                top, left, size = box
                axes[r, c].add_patch(plt.Rectangle((left - 0.5, top - 0.5), size, size, fill=False,
                                                   edgecolor="yellow", lw=1.2))
                axes[r + 1, c].imshow(zoom(to_numpy(crop(image, *box)), crop_zoom), interpolation="nearest")
                axes[r + 1, c].set_title(f"{label}, crop x{crop_zoom}", fontsize=8, color="white",
                                         backgroundcolor="#333333")
        axes[r, 0].set_ylabel(image_name, color="white")
        r += 2 if box else 1
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        if not ax.images:
            ax.set_visible(False)
    fig.tight_layout()
    return fig


def plot_history(history: list[dict], keys: list[str], ax=None, smooth: int = 25, log: bool = False,
                 ylabel: str = ""):
    """Loss curves from a training history, raw (faint) and as a running mean over `smooth` steps.

    ylabel names the quantity and its unit (the keys go into the legend).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    steps = np.array([h["step"] for h in history])
    for i, key in enumerate(keys):
        values = np.array([h[key] for h in history], dtype=float)
        ax.plot(steps, values, color=f"C{i}", alpha=0.25, lw=0.8)
        if len(values) >= smooth:
            running = np.convolve(values, np.ones(smooth) / smooth, mode="valid")
            ax.plot(steps[smooth - 1:], running, color=f"C{i}", lw=1.8, label=f"{key} (mean of {smooth})")
        else:
            ax.plot(steps, values, color=f"C{i}", lw=1.8, label=key)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def perception_distortion_figure(result: dict):
    """PSNR against the perception measures of an evaluation result: SWD always (weight-free), LPIPS
    beside it where its weights were available; every method a point, the flow a curve over T; error
    bars: the 95% bootstrap intervals over the images (unpaired: a gap between two rows is judged by
    `evaluate.difference`, not by whether their bars overlap)."""
    from .methods import METHODS
    measures = [("swd", "SWD x 1e3 (lower = more natural local statistics)")]
    if "lpips" not in result["unavailable"]:
        measures.append(("lpips", "LPIPS (lower = closer to the original, perceptually)"))
    fig, axes = plt.subplots(1, len(measures), figsize=(6.4 * len(measures), 4.6), squeeze=False)
    for ax, (key, ylabel) in zip(axes[0], measures):
        curves, markers = [], []
        for i, (name, method) in enumerate(METHODS.items()):
            rows = [r for r in result["rows"] if r["method"] == name and key in r]
            if not rows:
                continue
            bars = [r for r in rows if key in r.get("intervals", {})]  # bootstrap intervals, where computed
            if bars:
                ax.errorbar([r["psnr"] for r in bars], [r[key] for r in bars], fmt="none", ecolor=f"C{i}",
                            alpha=0.45, lw=1, capsize=2,
                            xerr=[[r["psnr"] - r["intervals"]["psnr"][0] for r in bars],
                                  [r["intervals"]["psnr"][1] - r["psnr"] for r in bars]],
                            yerr=[[r[key] - r["intervals"][key][0] for r in bars],
                                  [r["intervals"][key][1] - r[key] for r in bars]])
            if method.stochastic:
                ax.plot([r["psnr"] for r in rows], [r[key] for r in rows], "o-", color=f"C{i}",
                        label=f"{method.label}, T = {rows[0]['temperature']:g} ... {rows[-1]['temperature']:g}"
                              " (unlabelled dots: the T between)")
                curves.append(rows)
            else:
                ax.plot(rows[0]["psnr"], rows[0][key], "s", ms=9, color=f"C{i}", label=method.label)
                markers.append((rows[0]["psnr"], rows[0][key]))
        _label_temperatures(ax, curves, markers, key)
        ax.set_xlabel("PSNR (dB)  → less distortion")
        ax.set_ylabel(ylabel)
        ax.set_title(f"perception-distortion: {key.upper()}" + (f" (bars: 95% bootstrap intervals over "
                     f"{len(result['images'])} images)" if "bootstrap" in result else ""), fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


LABEL_CLEARANCE = 0.07  # fraction of the axes: a temperature label's point must be this far from the others


def _label_temperatures(ax, curves: list[list[dict]], markers: list[tuple[float, float]], key: str) -> None:
    """Label a curve's points with their temperature, lowest first, skipping a point that lies within
    LABEL_CLEARANCE (in axes fractions) of a point already labelled or of another method's marker, so that
    no two labels and no label and marker collide; the label sits above right of its point, or below left
    where that point is in the upper right of the axes."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()

    def place(x, y):
        return np.array([(x - x0) / (x1 - x0), (y - y0) / (y1 - y0)])

    taken = [place(*m) for m in markers]
    for rows in curves:
        for r in rows:
            at = place(r["psnr"], r[key])
            if all(np.linalg.norm(at - other) > LABEL_CLEARANCE for other in taken):
                ax.annotate(f"T={r['temperature']:g}", (r["psnr"], r[key]), textcoords="offset points",
                            xytext=(-40, -12) if at.min() > 0.75 else (6, 4), fontsize=8)
                taken.append(at)


def diversity_figure(maps: dict, hr: torch.Tensor, box: tuple[int, int, int], crop_zoom: int = 4,
                     shown: int = 4, dpi: int = DPI):
    """`evaluate.diversity_maps` of one image as rows of crops at an integer zoom (saved at `dpi`, each
    crop pixel is crop_zoom x crop_zoom screen pixels): the original and its open detail, then per T
    `shown` samples and the spread of all of them, on one colour scale for every T."""
    top, left, size = box
    panel, gap, title = size * crop_zoom, 6, 18
    temperatures = list(maps["spread"])
    cols, rows = shown + 1, len(temperatures) + 1
    width, height = cols * (panel + gap) + gap, rows * (panel + title + gap) + gap
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor=BACKGROUND)
    spread_max = max(m.quantile(0.99).item() for m in maps["spread"].values())

    def show(row, col, image, text, **kwargs):
        ax = fig.add_axes([(gap + col * (panel + gap)) / width,
                           1 - (row + 1) * (panel + title + gap) / height, panel / width, panel / height])
        ax.imshow(zoom(image, crop_zoom), interpolation="nearest", **kwargs)
        ax.set_title(text, fontsize=8, color="white", backgroundcolor="#333333", pad=2)
        ax.set_xticks([])
        ax.set_yticks([])

    show(0, 0, to_numpy(crop(hr, *box)), "original")
    open_crop = crop(maps["open"], *box).numpy()
    show(0, 1, open_crop, "|null-space part| (open)", cmap="magma", vmin=0,
         vmax=maps["open"].quantile(0.99).item())
    for r, t in enumerate(temperatures, start=1):
        for c in range(shown):
            show(r, c, to_numpy(crop(maps["samples"][t][c, 0], *box)), f"T = {t:g}, sample {c + 1}")
        show(r, shown, crop(maps["spread"][t], *box).numpy(),
             f"spread of {len(maps['samples'][t])}, r = {maps['correlation'][t]:.2f} (image)", cmap="magma", vmin=0,
             vmax=spread_max)
    return fig


def comparison_figure(names: list[str], pairs, outputs, boxes: dict | None = None):
    """Original and every method's output (the flow at `methods.SHOWN_TEMPERATURES`) per image, first
    sample, with a zoomed crop where `boxes` names one."""
    from .methods import SHOWN_TEMPERATURES, label
    rows = {}
    for index, name in enumerate(names):
        row = {"original": pairs[index][0][0]}
        for (method, t), per_image in outputs.items():
            if t is None or t in SHOWN_TEMPERATURES:
                row[label(method, t)] = per_image[index][0, 0]
        rows[name] = row
    return image_rows(rows, boxes=boxes)


def sample_size_figure(values: dict[int, dict[str, np.ndarray]]):
    """`perceptual.swd_by_sample_size` against the number of images: per method (in the colour
    `perception_distortion_figure` gives it) the mean over the random subsets and the band of their
    central 90%, on a log2 axis of k."""
    from .methods import METHODS
    sizes = sorted(values)
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for name in values[sizes[0]]:
        color, per_k = f"C{list(METHODS).index(name)}", [values[k][name] for k in sizes]
        low, high = zip(*(np.percentile(v, [5, 95]) for v in per_k))
        ax.fill_between(sizes, low, high, color=color, alpha=0.2)
        ax.plot(sizes, [v.mean() for v in per_k], "o-", color=color,
                label=f"{METHODS[name].label}: mean; band: central 90% of {len(per_k[0])} subsets")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(k) for k in sizes])
    ax.set_xlabel("images k in the set scored (random 96 px crops of the held-out photos)")
    ax.set_ylabel("SWD x 1e3 against the same k originals")
    ax.set_title("a distribution distance from k images: value and spread", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
