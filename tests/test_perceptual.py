"""LPIPS and FID code paths offline, with explicitly random backbones (never presented as real scores)."""
import socket

import numpy as np
import pytest
import torch
from scipy import linalg

from sr_lib.cli import main
from sr_lib.evaluate import load_perceptual
from sr_lib.perceptual import (FeatureMoments, _blur, fid_patches, fid_result, frechet_distance, hf_energy_ratio,
                               inception_features, laplacian_pyramid, lpips_distance, pyramid_descriptors,
                               sliced_wasserstein, swd, swd_from_descriptors)


def fid(model, generated, reference, dims):
    """FID of two patch sets, each fed to the moments in several parts as a streaming evaluation does."""
    moments = []
    for patches in (generated, reference):
        m = FeatureMoments()
        for part in patches.split(32):
            m.add(inception_features(model, part))
        moments.append(m)
    return fid_result(*moments, dims)


@pytest.fixture(scope="module")
def random_lpips(random_perceptual):
    return random_perceptual["lpips"]


@pytest.fixture(scope="module")
def random_inception(random_perceptual):
    return random_perceptual["fid"]


def test_lpips_of_an_image_with_itself_is_zero_and_grows_with_noise(random_lpips):
    x = torch.rand(2, 3, 64, 64)
    assert lpips_distance(random_lpips, x, x) == pytest.approx(0.0, abs=1e-7)
    d = [lpips_distance(random_lpips, (x + s * torch.randn_like(x)).clamp(0, 1), x) for s in (0.05, 0.2)]
    assert 0 < d[0] < d[1]


@pytest.mark.slow
def test_fid_of_a_set_with_itself_is_about_zero_and_grows_with_noise(random_inception):
    patches = torch.rand(80, 3, 64, 64)
    with pytest.warns(UserWarning, match="80 samples < 192"):
        same = fid(random_inception, patches, patches, dims=192)
    assert same["fid"] == pytest.approx(0.0, abs=1e-6) and same["samples"] == 80 and "warning" in same
    values = [fid(random_inception, (patches + s * torch.randn_like(patches)).clamp(0, 1), patches, 64)["fid"]
              for s in (0.05, 0.2, 0.5)]
    assert 0 < values[0] < values[1] < values[2]


def test_frechet_distance_matches_the_closed_form_gaussian_case():
    rng = np.random.default_rng(0)
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, -1.0, 0.5])
    a, b = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    cov1, cov2 = a @ a.T + np.eye(3), b @ b.T + np.eye(3)
    x = rng.multivariate_normal(mu1, cov1, size=200_000)
    y = rng.multivariate_normal(mu2, cov2, size=200_000)
    root = linalg.sqrtm(cov1 @ cov2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(cov1 + cov2 - 2 * root)
    assert frechet_distance(x, y) == pytest.approx(expected, rel=0.02)
    # independent dimensions: sum of (mu1 - mu2)^2 + (sigma1 - sigma2)^2 = (9 + 1) + (1 + 4)
    x = rng.normal([0, 0], [1, 3], size=(200_000, 2))
    y = rng.normal([3, 1], [2, 1], size=(200_000, 2))
    assert frechet_distance(x, y) == pytest.approx(15, rel=0.02)


def test_streamed_moments_equal_numpys_mean_and_covariance():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(500, 6)) * [1, 2, 3, 4, 5, 6] + 10
    moments = FeatureMoments()
    for part in np.array_split(features, 7):
        moments.add(part)
    mean, cov = moments.stats()
    assert np.allclose(mean, features.mean(0)) and np.allclose(cov, np.cov(features, rowvar=False))
    shares = [FeatureMoments(), FeatureMoments(), FeatureMoments()]  # two ranks' shares merged, one empty
    shares[0].add(features[:200])
    shares[1].add(features[200:])
    for share in shares[1:]:
        shares[0].merge(share)
    assert shares[0].count == 500 and all(np.allclose(a, b) for a, b in zip(shares[0].stats(), (mean, cov)))


def test_swd_from_a_bounded_sample_of_descriptors_stays_close_and_keeps_all_when_it_can(faces):
    blurred = torch.nn.functional.avg_pool2d(faces, 3, 1, 1)
    full = swd(blurred, faces)["swd"]
    kept = pyramid_descriptors(blurred, keep=10_000)  # more than 45 x 45: every descriptor
    assert swd_from_descriptors(kept, pyramid_descriptors(faces))["swd"] == pytest.approx(full, rel=1e-9)
    sampled = swd_from_descriptors(pyramid_descriptors(blurred, keep=500), pyramid_descriptors(faces, keep=500))
    assert sampled["swd"] == pytest.approx(full, rel=0.15) and sum(len(d) for d in pyramid_descriptors(faces, keep=500)) <= 2 * 500 * 5


def test_fid_patches_draws_every_window():
    patches = fid_patches([torch.rand(3, 128, 128), torch.rand(3, 96, 160)])
    assert patches.shape == (9 + 2 * 4, 3, 64, 64)
    image = torch.arange(3 * 96 * 96, dtype=torch.float).reshape(3, 96, 96)
    assert torch.equal(fid_patches([image])[3], image[:, 32:96, 32:96])


def test_inception_features_have_the_asked_size(random_inception):
    assert inception_features(random_inception, torch.rand(3, 3, 64, 64)).shape == (3, 64)


def test_hf_energy_ratio_is_one_for_the_original_and_low_for_blur():
    x = torch.rand(1, 3, 64, 64)
    assert hf_energy_ratio(x, x) == pytest.approx(1.0)
    blurred = torch.nn.functional.avg_pool2d(x, 5, 1, 2)
    assert hf_energy_ratio(blurred, x) < 0.2
    assert hf_energy_ratio((x + 0.3 * torch.randn_like(x)), x) > 1


def test_colour_speckle_shows_in_the_chroma_ratio_not_in_the_grey_one():
    """Red/green dots of unchanged grey value (the colour speckle seen on SRGAN's outputs) leave the grey values'
    HF ratio nearly where it was and raise the colour planes' far above 1."""
    from sr_lib.perceptual import chroma_hf_ratio
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 64, 64), 5, 1, 2) * 0.5 + 0.25  # smooth colour
    assert chroma_hf_ratio(x, x) == pytest.approx(1.0)
    dots = (torch.rand(1, 1, 64, 64) < 0.1).float() * 0.1 * torch.randn(1, 1, 64, 64).sign()
    red_green = torch.tensor([1.0, -1.0, 0.0]).view(1, 3, 1, 1)  # the grey value (mean of R, G, B) unchanged
    speckled = x + dots * red_green
    assert hf_energy_ratio(speckled, x) == pytest.approx(1.0)
    assert chroma_hf_ratio(speckled, x) > 2


# ---------------------------------------------------------------- SWD
@pytest.fixture(scope="module")
def faces():
    from sr_lib.data import bundled_heldout
    return torch.stack(list(bundled_heldout().values()))


def test_swd_of_a_set_with_itself_is_zero_whatever_the_order(faces):
    assert swd(faces, faces)["swd"] == 0.0
    assert swd(faces.flip(0), faces)["swd"] == pytest.approx(0.0, abs=1e-9)
    # four samples per reference image, in any order: the same multiset of neighbourhoods
    assert swd(torch.cat([faces, faces, faces, faces]).flip(0), faces)["swd"] == pytest.approx(0.0, abs=1e-9)
    noisy = (faces + 0.03 * torch.randn_like(faces)).clamp(0, 1)
    assert swd(noisy, faces)["swd"] == pytest.approx(swd(noisy.flip(0), faces.flip(0))["swd"], rel=1e-9)


def test_swd_grows_with_blur_and_with_noise(faces):
    blurred, values = faces, []
    for _ in range(3):
        blurred = _blur(blurred)
        values.append(swd(blurred, faces)["swd"])
    assert 0 < values[0] < values[1] < values[2]
    noise = [swd((faces + s * torch.randn_like(faces)).clamp(0, 1), faces)["swd"] for s in (0.01, 0.03, 0.1)]
    assert 0 < noise[0] < noise[1] < noise[2]
    # blur shows at the finest level most, where the missing detail lives
    levels = swd(_blur(faces), faces)["levels"]
    assert levels[0] == max(levels) and len(levels) == 5  # 256, 128, 64, 32 and the 16 px low-pass


def test_sliced_wasserstein_by_hand():
    one_direction = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    a = torch.tensor([[0.0, 5.0], [1.0, -2.0], [2.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[3.0, 1.0], [1.0, 1.0], [2.0, 1.0]], dtype=torch.float64)
    # sorted projections 0, 1, 2 against 1, 2, 3: every gap is 1
    assert sliced_wasserstein(a, b, one_direction) == pytest.approx(1.0)
    # two points against one point repeated: W1 between {0, 2} and {1} is 1; sets of different size
    assert sliced_wasserstein(torch.tensor([[0.0], [2.0]], dtype=torch.float64),
                              torch.tensor([[1.0]], dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64)) == 1.0
    # a shift by c along the direction moves every projection by c
    direction = torch.tensor([[0.6, 0.8]], dtype=torch.float64)
    assert sliced_wasserstein(a + torch.tensor([3.0, 4.0]), a, direction) == pytest.approx(5.0)


def test_laplacian_pyramid_levels_add_back_up_to_the_image():
    image = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    levels = laplacian_pyramid(image)
    assert [level.shape[-1] for level in levels] == [64, 32, 16]  # two bands and the 16 px low-pass
    rebuilt = levels[-1]
    for band in reversed(levels[:-1]):
        expanded = torch.zeros_like(band)
        expanded[..., ::2, ::2] = 4 * rebuilt
        rebuilt = band + _blur(expanded)
    assert torch.allclose(rebuilt, image, atol=1e-12)


@pytest.fixture
def offline_empty_hub(tmp_path, monkeypatch):
    """No cached weights, and any network connection fails the test."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(*args, **kwargs):
        raise AssertionError("a network connection was attempted")
    monkeypatch.setattr(socket.socket, "connect", no_network)


def test_missing_weights_make_metrics_unavailable_without_network(offline_empty_hub, tmp_path):
    perceptual = load_perceptual()
    assert perceptual["lpips"] is None and perceptual["fid"] is None
    assert "alexnet-owt-7be5be79.pth" in perceptual["unavailable"]["lpips"]
    assert "pt_inception-2015-12-05-6726825d.pth" in perceptual["unavailable"]["fid"]
    assert str(tmp_path / "hub" / "checkpoints") in perceptual["unavailable"]["fid"]


def test_weights_command_reports_missing_files_offline(offline_empty_hub, capsys):
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    assert out.count("MISSING") == 3 and "alexnet-owt-7be5be79.pth" in out and "vgg19-dcbb9e9d.pth" in out
