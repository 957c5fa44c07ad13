import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from sr_lib.data import (HELDOUT_FACES, RandomCrops, bundled_heldout, bundled_training_images,
                         load_folder)
from sr_lib.imaging import degrade


def _colour_over_brightness_detail(image: torch.Tensor) -> float:
    from sr_lib.perceptual import high_frequency_energy
    x = image[None]
    chroma = x - x.mean(1, keepdim=True)
    colour = sum(high_frequency_energy(chroma[:, [k, k, k]], cutoff=0.25) for k in range(3))
    return (colour / high_frequency_energy(x, cutoff=0.25)).item()


def test_training_photographs_have_the_colour_detail_of_a_portrait():
    from sr_lib.data import BUNDLED
    faces = [_colour_over_brightness_detail(face) for face in bundled_heldout().values()]
    train = {name: _colour_over_brightness_detail(image) for name, image in bundled_training_images().items()}
    assert max(faces) < 0.25 and max(train.values()) < 0.25, train
    assert set(BUNDLED) == set(train) | set(HELDOUT_FACES)


def test_bundled_images_are_real_photographs_and_heldout_is_disjoint():
    train, heldout = bundled_training_images(), bundled_heldout()
    assert len(train) == 4 and set(heldout) == set(HELDOUT_FACES)
    assert not set(train) & set(heldout)
    for image in [*train.values(), *heldout.values()]:
        assert image.shape[0] == 3 and 0 <= image.min() and image.max() <= 1
        assert image.std() > 0.05  # a photograph, not a flat image
    assert all(face.shape == (3, 256, 256) for face in heldout.values())


def test_degrade_is_antialiased_bicubic_4x():
    hr = torch.rand(1, 3, 64, 48)
    lr = degrade(hr)
    assert lr.shape == (1, 3, 16, 12)
    flat = torch.full((1, 3, 32, 32), 0.3)
    assert torch.allclose(degrade(flat), torch.full((1, 3, 8, 8), 0.3), atol=1e-6)
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None]) % 2
    # antialiasing averages away the highest frequency instead of aliasing it
    assert degrade(checker.float().expand(1, 3, 32, 32)).std() < 0.05


def test_random_crops_are_seeded_and_shaped():
    images = {"a": torch.rand(3, 40, 50), "b": torch.rand(3, 64, 64)}
    a, b = RandomCrops(images, 32, 4, seed=1), RandomCrops(images, 32, 4, seed=1)
    hr_a, lr_a = next(a)
    hr_b, _ = next(b)
    assert hr_a.shape == (4, 3, 32, 32) and lr_a.shape == (4, 3, 8, 8)
    assert torch.equal(hr_a, hr_b)
    with pytest.raises(ValueError, match="at least 128x128"):
        RandomCrops(images, 128, 4)
    with pytest.raises(ValueError, match="divisible by 4"):
        RandomCrops(images, 30, 4)


def test_folder_loader_converts_skips_and_names_files(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(tmp_path / "gray.png")
    Image.fromarray(rng.integers(0, 255, (64, 64, 4), dtype=np.uint8)).save(tmp_path / "rgba.png")
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "small.png")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = load_folder(tmp_path, 32)
    messages = " ".join(str(w.message) for w in caught)
    assert sorted(images) == ["gray.png", "rgb.png", "rgba.png"]
    assert all(img.shape == (3, 64, 64) for img in images.values())
    for expected in ("gray.png: converting L", "rgba.png: converting RGBA", "small.png: skipped",
                     "broken.jpg: skipped"):
        assert expected in messages


def test_folder_without_usable_images_is_a_clear_error(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no usable image"):
        load_folder(tmp_path, 32)
    with pytest.raises(ValueError, match="does not exist"):
        load_folder(tmp_path / "missing", 32)


def test_a_folder_given_for_evaluation_is_used_whole_at_one_common_size(tmp_path):
    from PIL import Image
    for i, (w, h) in enumerate([(300, 280), (90, 120), (64, 200)]):
        Image.fromarray(np.full((h, w, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    from sr_lib.data import EvaluationSet
    images = dict(EvaluationSet(str(tmp_path)))
    assert sorted(images) == ["0.png", "1.png", "2.png"]
    assert {tuple(image.shape) for image in images.values()} == {(3, 64, 64)}


def test_random_crops_take_all_eight_orientations():
    image = torch.arange(3 * 8 * 8, dtype=torch.float).reshape(3, 8, 8) / 192  # no symmetry at all
    stream = RandomCrops({"x": image}, crop=8, batch=64, seed=0)
    seen = {tuple(patch.flatten().tolist()) for patch in next(stream)[0]}
    dihedral = set()
    for turned in (image, image.transpose(-1, -2)):
        for flips in ((), (-1,), (-2,), (-1, -2)):
            dihedral.add(tuple((turned.flip(flips) if flips else turned).flatten().tolist()))
    assert seen == dihedral


def test_an_evaluation_folder_is_read_one_image_at_a_time(tmp_path, monkeypatch):
    from sr_lib import data
    for i in range(3):
        Image.fromarray(np.full((80 + 8 * i, 96, 3), 50 * i, np.uint8)).save(tmp_path / f"{i}.png")
    images = data.EvaluationSet(str(tmp_path))
    assert len(images) == 3 and images.side == 80 and images.names == ["0.png", "1.png", "2.png"]
    reads = []
    monkeypatch.setattr(data, "read_photo", lambda path, alpha: reads.append(path) or data.Photo(
        torch.full((3, 96, 96), 0.5), None, "RGB"))
    for count, (name, image) in enumerate(images, start=1):
        assert len(reads) == count and image.shape == (3, 80, 80)  # read when reached, not before


def test_a_folder_stream_is_the_same_with_any_number_of_workers_and_resumes_at_a_step(tmp_path):
    from sr_lib.data import FolderStream
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (40 + 4 * i, 48, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "small.png")
    with pytest.warns(UserWarning, match="small.png: skipped"):
        streams = [FolderStream(str(tmp_path), 32, 3, seed=7, workers=w) for w in (0, 2)]
    batches = [[next(stream)[0] for _ in range(5)] for stream in streams]
    assert all(torch.equal(a, b) for a, b in zip(*batches)) and batches[0][0].shape == (3, 3, 32, 32)
    assert not torch.equal(batches[0][0], batches[0][1])
    streams[1].set_state(torch.tensor([3]))
    assert torch.equal(next(streams[1])[0], batches[0][3]) and int(streams[1].state()[0]) == 4
