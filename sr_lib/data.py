"""Real photographs offline, any image folder, and random training crops.

The study trained on FFHQ and evaluated on CelebA; neither can be downloaded here, so the offline
default (`bundled`) uses the real colour photographs that installed packages ship. The two portraits
(astronaut Eileen Collins and Grace Hopper) are held out: their 256x256 face crops are the evaluation
set, and training never sees them. Any folder of images (FFHQ, CelebA, DIV2K, your own photos) works
through `load_folder`.
"""
import io
import stat
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .errors import UserError
from .config import SCALE
from .imaging import check_images, degrade

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
MAX_OUTPUT_PIXELS = 400_000_000  # a 20000x20000 px 4x output: more would not fit a PNG writer's memory
ALPHA_MODES = ("keep", "drop")
_INTEGER_DEPTH = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535}
GRAY_MODES = {"1", "L", "LA", "F", *_INTEGER_DEPTH}


def _skimage(name):
    def load():
        import skimage.data
        return getattr(skimage.data, name)()
    return load


def _sklearn(filename):
    def load():
        from sklearn.datasets import load_sample_image
        return load_sample_image(filename)
    return load


def _grace_hopper():
    import matplotlib.cbook
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


# name -> (loader returning an HxWx3 uint8 array, source and licence)
BUNDLED = {
    "coffee": (_skimage("coffee"), "scikit-image; Rachel Michetti, CC0"),
    "chelsea": (_skimage("chelsea"), "scikit-image; Stefan van der Walt, CC0"),
    "immunohistochemistry": (_skimage("immunohistochemistry"), "scikit-image; Jerome Walker, CC0"),
    "china": (_sklearn("china.jpg"), "scikit-learn; Wikimedia Commons, CC BY 2.0"),
    "astronaut": (_skimage("astronaut"), "scikit-image; NASA (Eileen Collins), public domain"),
    "grace_hopper": (_grace_hopper, "matplotlib; US Navy (Grace Hopper), public domain"),
}
# Trained on: the photographs whose finest colour detail is like a camera portrait's. Measured as the
# energy of colour (each pixel minus its grey value) over that of brightness, above a quarter of the
# sampling rate: the held-out faces 0.11 and 0.17; coffee 0.20, chelsea 0.10, immunohistochemistry 0.06,
# china 0.07. Left out: rocket 0.96, hubble_deep_field 0.93, retina 0.80, flower 0.76, where the finest
# colour is sensor noise, JPEG chroma blocks or a star field: a discriminator that learns "real images
# have colour speckle" from them teaches the generator to paint it on faces (we saw exactly that).
TRAINING = ("coffee", "chelsea", "immunohistochemistry", "china")
# held-out portraits: (top, left) of a 256x256 face crop; training never sees these images
HELDOUT_FACES = {"astronaut": (0, 60), "grace_hopper": (80, 100)}
HELDOUT_SIDE = 256
# (top, left, size) of a 48 px region around an eye in each face crop: where the figures zoom in
HELDOUT_DETAIL = {"astronaut": (78, 116, 48), "grace_hopper": (90, 80, 48)}


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> (3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.array(array)).permute(2, 0, 1).float() / 255.0


def bundled_training_images() -> dict[str, torch.Tensor]:
    return {name: to_tensor(BUNDLED[name][0]()) for name in TRAINING}


def bundled_heldout() -> dict[str, torch.Tensor]:
    """The held-out evaluation set: 256x256 HR face crops of the two portraits."""
    faces = {}
    for name, (top, left) in HELDOUT_FACES.items():
        image = to_tensor(BUNDLED[name][0]())
        faces[name] = image[:, top:top + HELDOUT_SIDE, left:left + HELDOUT_SIDE]
    return faces


def heldout_crops(count: int, side: int = 96, seed: int = 0) -> torch.Tensor:
    """`count` seeded random side x side HR crops (count, 3, side, side) of the held-out photographs, whole
    photos rather than only the face crops, taken from each in turn: more images to score than two."""
    photos = [to_tensor(BUNDLED[name][0]()) for name in HELDOUT_FACES]
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([random_crop(photos[i % len(photos)], side, gen) for i in range(count)])


def open_photo(source) -> Image.Image:
    """The image at a path or in a file-like object; ValueError if it is not an image, not a regular file
    (a FIFO or a device would block or never end) or too large (only the header is read: cheap enough to
    check every input before work starts)."""
    name = source if isinstance(source, (str, Path)) else "this file"
    if isinstance(source, (str, Path)):
        mode = Path(source).stat().st_mode  # FileNotFoundError names a missing file
        if not stat.S_ISREG(mode):
            raise UserError(f"{name} is {'a folder' if stat.S_ISDIR(mode) else 'not a regular file'}, not a photo")
    try:
        image = Image.open(source)
    except Image.DecompressionBombError as error:  # PIL's guard (about 179 million pixels), named as ours
        raise UserError(f"{name} claims, in its header, more pixels than a photo this program upscales: "
                         f"its 4x output would exceed {MAX_OUTPUT_PIXELS:,} pixels") from error
    except UnidentifiedImageError as error:
        if _is_tiff(source):
            raise UserError(f"{name} is a TIFF whose pixel layout this program cannot read (for example "
                             "floating-point RGB or RGBA); save it as an 8- or 16-bit TIFF or a PNG") from error
        raise UserError(f"{name} is not an image file this program can read (PNG, JPEG, TIFF, BMP, WebP, ...)") from error
    if image.width * image.height * SCALE ** 2 > MAX_OUTPUT_PIXELS:
        raise UserError(f"{name} is {image.width}x{image.height}: its 4x output would exceed "
                         f"{MAX_OUTPUT_PIXELS:,} pixels")
    return image


def _is_tiff(source) -> bool:
    try:
        if isinstance(source, (str, Path)):
            with open(source, "rb") as file:
                head = file.read(4)
        else:
            source.seek(0)
            head = source.read(4)
    except (OSError, AttributeError, io.UnsupportedOperation):
        return False
    return head in (b"II*\x00", b"MM\x00*")


def check_photo(source) -> None:
    """Decode the whole photo and discard it: a truncated or corrupt file is named before any work
    starts (a header alone can be intact over a broken body)."""
    try:
        read_photo(source, alpha="drop")
    except OSError as error:
        raise UserError(f"{source}: cannot be decoded ({error})") from error


def frames(source) -> int:
    """How many frames the file holds (an animated GIF or WebP, a multi-page TIFF: more than one)."""
    with open_photo(source) as image:
        return getattr(image, "n_frames", 1)


def _to_srgb(image: Image.Image) -> Image.Image:
    """An 8-bit image with an embedded ICC colour profile, converted to sRGB (what the networks were
    trained on and what a PNG without a profile means); others as they are."""
    profile = image.info.get("icc_profile")
    if not profile or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        out_mode = "RGBA" if image.mode == "RGBA" else "RGB"
        return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode=out_mode)
    except (ImageCms.PyCMSError, OSError):  # a broken profile: the pixels as they are
        return image


class Photo(NamedTuple):
    rgb: torch.Tensor  # (3, H, W) in [0, 1]; grayscale photos repeat their one channel
    alpha: torch.Tensor | None  # (1, H, W) in [0, 1], or None (no alpha, or dropped)
    mode: str  # PIL's mode of the file: 'RGB', 'L', 'I;16', 'RGBA', 'CMYK', ...

    @property
    def grayscale(self) -> bool:
        return self.mode in GRAY_MODES


def read_photo(source, alpha: str = "keep") -> Photo:
    """A photo file as RGB in [0, 1], upright by its EXIF orientation, each bit depth by its own scale:
    1-bit, 8-bit, 16-bit (divided by 65535, not clipped to white) and float grayscale, palette, RGB,
    RGBA/LA and CMYK (PIL's conversion). `alpha`: 'keep' or 'drop' its alpha channel."""
    if alpha not in ALPHA_MODES:
        raise UserError(f"alpha must be one of {ALPHA_MODES}, got {alpha!r}")
    with open_photo(source) as file:
        image = _to_srgb(ImageOps.exif_transpose(file))
        if image.mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")  # a palette: its colours
        mode = image.mode
        if mode in _INTEGER_DEPTH:  # 16-bit (or 32-bit integer) grayscale
            values = np.asarray(image, dtype=np.float64)
            if values.min() < 0 or values.max() > _INTEGER_DEPTH[mode]:
                raise UserError(f"{mode} image with values outside 0..65535: an unsupported bit depth")
            rgb, alpha_channel = torch.from_numpy(values / _INTEGER_DEPTH[mode]).float().expand(3, -1, -1), None
        elif mode == "F":  # 32-bit float grayscale: taken as already in [0, 1] (checked below)
            rgb, alpha_channel = torch.from_numpy(np.asarray(image, dtype=np.float32)).expand(3, -1, -1), None
        else:
            has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La")
            array = np.asarray(image.convert("RGBA" if has_alpha else "RGB"))  # CMYK, YCbCr, 1-bit, L: PIL's
            array = torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255.0
            rgb, alpha_channel = array[:3], array[3:] if has_alpha else None
    rgb = rgb.contiguous()
    check_images(rgb[None], "photo")
    return Photo(rgb, alpha_channel if alpha == "keep" else None, mode)


def load_folder(path: str | Path, min_side: int) -> dict[str, torch.Tensor]:
    """Every usable image under `path` (recursively, see `_image_files`), as (3, H, W) tensors."""
    images = {}
    for name, (file, _) in _image_files(Path(path), min_side).items():
        try:
            photo = read_photo(file, alpha="drop")
        except (ValueError, OSError) as error:  # a readable header over a broken body
            warnings.warn(f"{file}: skipped, not a readable image ({error})", stacklevel=2)
            continue
        if photo.mode != "RGB":
            warnings.warn(f"{file}: converting {photo.mode} image to RGB", stacklevel=2)
        images[name] = photo.rgb
    if not images:
        raise UserError(f"no usable image (at least {min_side}x{min_side} px) in {path}")
    return images


def center_crop(image: torch.Tensor, side: int) -> torch.Tensor:
    """The central side x side crop, side rounded down to a multiple of 4 and to the image's size."""
    side = min(side, *image.shape[-2:]) // 4 * 4
    top, left = (image.shape[-2] - side) // 2, (image.shape[-1] - side) // 2
    return image[:, top:top + side, left:left + side]


def training_stream(data: str, crop: int, batch: int, seed: int, workers: int = 0, rank: int = 0,
                    pin_memory: bool = False):
    """The training batches: bundled photographs or a folder held in memory (`RandomCrops`), or, with
    `workers` > 0, a folder decoded on the fly in that many processes (`FolderStream`). Both give the same
    batch at the same step of the same folder, and their state is the step."""
    if workers > 0:
        if data == "bundled":
            raise UserError("--workers reads an image folder on the fly; the bundled photographs are in memory")
        return FolderStream(data, crop, batch, seed, workers, rank, pin_memory)
    return RandomCrops(training_images(data, crop), crop, batch, seed, rank)


def training_images(data: str, crop: int) -> dict[str, torch.Tensor]:
    """`bundled` or a folder path (used whole: evaluate on another folder) -> the images to crop from."""
    if data == "bundled":
        return bundled_training_images()
    return load_folder(data, crop)


def _image_files(root: Path, min_side: int) -> dict[str, tuple[Path, int]]:
    """{relative name: (file, its shorter side)} of every image file under `root` at least min_side px on
    each side; only headers are read. Unreadable and small files are skipped with a warning."""
    if root.exists() and not root.is_dir():
        raise UserError(f"--data {root} is a file; give a folder of images (or 'bundled')")
    if not root.is_dir():
        raise UserError(f"image folder {root} does not exist; see README 'Data' for FFHQ/CelebA")
    files = {}
    for file in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            with open_photo(file) as image:
                w, h = image.size
        except (ValueError, OSError) as error:
            warnings.warn(f"{file}: skipped, not a readable image ({error})", stacklevel=3)
            continue
        if min(w, h) < min_side:
            warnings.warn(f"{file}: skipped, {w}x{h} is smaller than {min_side} px", stacklevel=3)
            continue
        files[str(file.relative_to(root))] = file, min(w, h)
    if not files:
        raise UserError(f"no usable image (at least {min_side}x{min_side} px) in {root}")
    return files


class EvaluationSet:
    """`bundled-heldout` or a folder path -> HR evaluation images, read one at a time as they are used
    (a CelebA test split of 20,000 images never sits in memory at once).

    A folder given for evaluation is used whole (it is not split: train on another folder), each image
    centre-cropped to one common square side, the smallest image's, at most 256 px and divisible by 4, so
    the set-level measures (SWD, FID) compare equally large images."""

    def __init__(self, data: str):
        self.data = data
        if data in ("bundled", "bundled-heldout"):
            self._images, self._files, self.side = bundled_heldout(), {}, HELDOUT_SIDE
        else:
            self._images, self._files = {}, _image_files(Path(data), 32)
            self.side = min(HELDOUT_SIDE, *(side for _, side in self._files.values())) // 4 * 4
        self.names = list(self._images or self._files)

    def __len__(self) -> int:
        return len(self.names)

    def read(self, name: str) -> torch.Tensor:
        """The (3, side, side) HR image of that name; ValueError naming the file if it cannot be decoded
        (its header was readable when the folder was scanned)."""
        if self._files:
            try:
                return center_crop(read_photo(self._files[name][0], alpha="drop").rgb, self.side)
            except OSError as error:
                raise UserError(f"{self._files[name][0]}: cannot be decoded ({error})") from error
        image = self._images[name] if self._images else read_photo(self._files[name][0], alpha="drop").rgb
        return center_crop(image, self.side)

    def __iter__(self):
        """(name, HR image) in a fixed order."""
        for name in self.names:
            yield name, self.read(name)


def random_crop(image: torch.Tensor, crop: int, generator: torch.Generator) -> torch.Tensor:
    """A crop x crop window at a random place of image (3, H, W), in one of its 8 orientations."""
    top = torch.randint(image.shape[-2] - crop + 1, (1,), generator=generator).item()
    left = torch.randint(image.shape[-1] - crop + 1, (1,), generator=generator).item()
    patch = image[:, top:top + crop, left:left + crop]
    flip_h, flip_v, transpose = (torch.rand(3, generator=generator) < 0.5).tolist()
    if flip_h:
        patch = patch.flip(-1)
    if flip_v:
        patch = patch.flip(-2)
    return patch.transpose(-1, -2) if transpose else patch


def step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """The generator of batch `step`: seeded from (seed, rank, step) alone, so any batch can be drawn
    again, by any process, without the ones before it."""
    return torch.Generator().manual_seed(hash((seed, rank, step)) & (2 ** 62 - 1))


class RandomCrops:
    """An endless, seeded stream of (HR, LR) batches of random crops, each in one of its 8 orientations,
    from images held in memory. Batch `step` is a function of (seed, rank, step) alone (`step_generator`),
    as in `FolderStream`: its state is the next step, and either stream continues the other's.

    Flips and 90-degree rotations (the dihedral group) multiply the photographs' texture by eight
    without inventing pixels: faces and hair have no preferred orientation at the crop's scale.
    """

    def __init__(self, images: dict[str, torch.Tensor], crop: int, batch: int, seed: int = 0, rank: int = 0):
        if crop % 4:
            raise UserError(f"crop size {crop} is not divisible by 4")
        self.images = [img for img in images.values() if min(img.shape[-2:]) >= crop]
        if not self.images:
            raise UserError(f"no training image is at least {crop}x{crop} px")
        self.crop, self.batch, self.seed, self.rank = crop, batch, seed, rank
        self.step = 0

    def batch_at(self, step: int) -> torch.Tensor:
        gen = step_generator(self.seed, self.rank, step)
        return torch.stack([random_crop(self.images[torch.randint(len(self.images), (1,), generator=gen).item()],
                                        self.crop, gen) for _ in range(self.batch)])  # images equally likely

    def __iter__(self):
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        hr = self.batch_at(self.step)
        self.step += 1
        return hr, degrade(hr)

    def state(self) -> torch.Tensor:
        return torch.tensor([self.step])

    def set_state(self, state: torch.Tensor) -> None:
        self.step = int(state[0])


class FolderCrops(torch.utils.data.IterableDataset):
    """Batches of random crops from image files decoded on the fly, for folders too large to hold (FFHQ:
    70,000 photographs of 1024 px), in DataLoader worker processes.

    Batch `step` is a function of (seed, rank, step) alone: its generator is seeded from them, and worker
    w of W produces steps start + w, start + w + W, ..., which the DataLoader returns in order. So the
    stream is the same with any number of workers, and resuming at a step needs only the step."""

    def __init__(self, files: list[Path], crop: int, batch: int, seed: int, rank: int = 0, start: int = 0):
        self.files, self.crop, self.batch, self.seed, self.rank, self.start = files, crop, batch, seed, rank, start
        self.broken = set()

    def batch_at(self, step: int) -> torch.Tensor:
        """A file that fails to decode is skipped with a warning (once per worker) and another is drawn
        from the same generator: decoding fails the same way in every worker, so the stream stays a
        function of (seed, rank, step)."""
        gen = step_generator(self.seed, self.rank, step)
        crops = []
        while len(crops) < self.batch:
            file = self.files[torch.randint(len(self.files), (1,), generator=gen).item()]
            try:
                image = read_photo(file, alpha="drop").rgb
            except (ValueError, OSError) as error:
                if file not in self.broken:
                    self.broken.add(file)
                    warnings.warn(f"{file}: skipped, not a readable image ({error})", stacklevel=2)
                if len(self.broken) == len(self.files):
                    raise UserError(f"none of the {len(self.files)} images in the training folder can be decoded")
                continue
            crops.append(random_crop(image, self.crop, gen))
        return torch.stack(crops)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        step = self.start + worker
        while True:
            yield self.batch_at(step)
            step += workers


class FolderStream:
    """`RandomCrops`' interface over `FolderCrops` in `workers` processes: (HR, LR) batches; its state is
    the next step."""

    def __init__(self, folder: str, crop: int, batch: int, seed: int, workers: int, rank: int = 0,
                 pin_memory: bool = False):
        self.files = [file for file, _ in _image_files(Path(folder), crop).values()]
        self.args = (crop, batch, seed, rank)
        self.workers, self.pin_memory = workers, pin_memory
        self.set_state(torch.tensor([0]))

    def set_state(self, state: torch.Tensor) -> None:
        self.step = int(state[0])
        dataset = FolderCrops(self.files, *self.args, start=self.step)
        loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=self.workers,
                                             pin_memory=self.pin_memory)
        self.batches = iter(loader)

    def state(self) -> torch.Tensor:
        return torch.tensor([self.step])

    def __iter__(self):
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        hr = next(self.batches)
        self.step += 1
        return hr, degrade(hr)
