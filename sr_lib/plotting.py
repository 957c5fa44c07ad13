"""Figures shared by the notebooks and the report: image rows with zoomed crops, loss curves, the
perception-distortion plane and the side-by-side comparison.

Images are drawn pixel for pixel (`pixel_grid`) at an integer zoom, never below 1:1, with
nearest-neighbour interpolation so pixels stay visible, on a neutral grey background that reads in
light and dark themes.
"""
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import MaxNLocator

from .errors import UserError

BACKGROUND = "#808080"
DPI = 110  # figures are saved (report) and shown (notebooks) at this resolution
MAX_WIDTH = 960  # px: about what a JupyterLab output area shows on a laptop without scaling an image down


def to_numpy(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (1, 3, H, W) tensor in [0, 1] -> HxWx3 float array."""
    image = image.detach().squeeze(0) if image.dim() == 4 else image.detach()
    return image.clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def crop(image: torch.Tensor, top: int, left: int, size: int) -> torch.Tensor:
    """The size x size square at (top, left) of a (…, H, W) tensor, checked to lie inside it."""
    h, w = image.shape[-2:]
    if size < 1 or not (0 <= top <= h - size and 0 <= left <= w - size):
        raise UserError(f"crop {size}x{size} at ({top}, {left}) does not fit a {h}x{w} image")
    return image[..., top:top + size, left:left + size]


def zoom(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor."""
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


def pixel_grid(rows: list[list[tuple | None]], dpi: int = DPI, gap: int = 6, title: int = 18):
    """A figure of image panels drawn pixel for pixel: each panel (array H x W [x 3], title, imshow
    keywords), or None for an empty cell, is placed at its array's own size, so that at `dpi` every
    array pixel is one screen pixel (zoom by an integer factor first). Returns (figure, axes grid)."""
    n_cols = max(len(row) for row in rows)
    widths = [max((row[c][0].shape[1] for row in rows if c < len(row) and row[c] is not None), default=0)
              for c in range(n_cols)]
    heights = [max(panel[0].shape[0] for panel in row if panel is not None) for row in rows]
    width, height = sum(widths) + gap * (n_cols + 1), sum(heights) + (title + gap) * len(rows) + gap
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor=BACKGROUND)
    axes, top = [], gap
    for row, row_height in zip(rows, heights):
        top += title
        left, row_axes = gap, []
        for c, panel in enumerate(row):
            if panel is None:
                row_axes.append(None)
            else:
                image, text, kwargs = panel
                h, w = image.shape[:2]
                ax = fig.add_axes([left / width, 1 - (top + h) / height, w / width, h / height])
                ax.imshow(image, interpolation="nearest", **kwargs)
                ax.set_title(text, fontsize=8, color="white", backgroundcolor="#333333", pad=2)
                ax.set_xticks([])
                ax.set_yticks([])
                row_axes.append(ax)
            left += widths[c] + gap
        axes.append(row_axes)
        top += row_height + gap
    return fig, axes


def integer_zoom(side: int, min_side: int) -> int:
    """The smallest integer zoom that shows `side` pixels on at least `min_side` screen pixels."""
    return max(1, -(-min_side // side))


def image_rows(rows: dict[str, dict[str, torch.Tensor]], boxes: dict[str, tuple[int, int, int]] | None = None,
               crop_zoom: int = 4, min_side: int = 128):
    """One row per image, one column per method; with boxes[image] = (top, left, size) a second row of
    crops at `crop_zoom`. Every image is drawn at an integer zoom, at least `min_side` px (a 256 px face
    at 1:1, a 16 px LR crop at 8x), never below 1:1: the artefacts the notebooks discuss stay visible.

    rows: {image name: {method label: (3, H, W) tensor}}. Returns the matplotlib figure.
    """
    boxes = {name: box for name, box in (boxes or {}).items() if name in rows}
    grid, marks = [], []
    for image_name, methods in rows.items():
        side = max(max(image.shape[-2:]) for image in methods.values())
        factor = integer_zoom(side, min_side)
        suffix = "" if factor == 1 else f" (x{factor})"
        per_row = max(1, MAX_WIDTH // (side * factor + 6))  # wrapped, so that no viewer has to shrink it
        items = list(methods.items())
        for start in range(0, len(items), per_row):
            part = items[start:start + per_row]
            grid.append([(zoom(to_numpy(image), factor),
                          f"{image_name}: {label}{suffix}" if start + c == 0 else label + suffix, {})
                         for c, (label, image) in enumerate(part)])
            box = boxes.get(image_name)
            marks.append((box, factor))
            if box:
                grid.append([(zoom(to_numpy(crop(image, *box)), crop_zoom), f"{label}, crop x{crop_zoom}", {})
                             for label, image in part])
                marks.append((None, 1))
    fig, axes = pixel_grid(grid)
    for row_axes, (box, factor) in zip(axes, marks):
        if box:
            top, left, size = box
            for ax in row_axes:
                ax.add_patch(plt.Rectangle((factor * left - 0.5, factor * top - 0.5), factor * size, factor * size,
                                           fill=False, edgecolor="yellow", lw=1.2))
    return fig


def plot_history(history: list[dict], keys: list[str] | dict[str, str], ax=None, smooth: int = 25,
                 log: bool = False, ylabel: str = ""):
    """Loss curves from a training history, raw (faint) and as a running mean over `smooth` steps.

    ylabel names the quantity and its unit; the legend shows the keys, or, where `keys` is a dict, the
    words it maps them to.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    labels = keys if isinstance(keys, dict) else {key: key for key in keys}
    steps = np.array([h["step"] for h in history])
    for i, (key, name) in enumerate(labels.items()):
        values = np.array([h[key] for h in history], dtype=float)
        ax.plot(steps, values, color=f"C{i}", alpha=0.25, lw=0.8)
        if len(values) >= smooth:
            running = np.convolve(values, np.ones(smooth) / smooth, mode="valid")
            ax.plot(steps[smooth - 1:], running, color=f"C{i}", lw=1.8, label=f"{name} (mean of {smooth} steps)")
        else:
            ax.plot(steps, values, color=f"C{i}", lw=1.8, label=name)
    if log:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are counted: no fractional ticks
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
                     shown: int = 3):
    """`evaluate.diversity_maps` of one image as rows of crops at an integer zoom: the original and its
    open detail, then per T `shown` samples and the spread of all of them, on one colour scale for every T
    (black 0, the brightest colour the value in the title; r: the correlation over the whole image)."""
    spread_max = max(m.quantile(0.99).item() for m in maps["spread"].values())

    def panel(image, text, **kwargs):
        array = to_numpy(crop(image, *box)) if image.dim() == 3 else crop(image, *box).numpy()
        return zoom(array, crop_zoom), text, kwargs

    open_max = maps["open"].quantile(0.99).item()
    grid = [[panel(hr, "original"), panel(maps["open"], f"|null-space part|, 0 to {open_max:.2f}", cmap="magma",
                                          vmin=0, vmax=open_max)]]
    for t, samples in maps["samples"].items():
        grid.append([panel(samples[c, 0], f"T = {t:g}, sample {c + 1}") for c in range(shown)]
                    + [panel(maps["spread"][t], f"spread of {len(samples)}, 0 to {spread_max:.2f}; "
                             f"r = {maps['correlation'][t]:.2f}", cmap="magma", vmin=0, vmax=spread_max)])
    return pixel_grid(grid)[0]


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
