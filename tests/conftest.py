import pytest
import torch

from sr_lib.config import get_config


@pytest.fixture
def tiny():
    return get_config("tiny")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """sr.pt, srgan.pt and flow.pt of the tiny config, a few steps each (the plumbing, not the quality)."""
    from sr_lib.train import TrainSettings, train
    out = tmp_path_factory.mktemp("tiny_checkpoints")
    for method in ("sr", "srgan", "flow"):  # SRGAN and the flow start from SR
        train(TrainSettings(method, get_config("tiny"), out, 3, show_progress=False))
    return out


@pytest.fixture(scope="session")
def small_faces(tmp_path_factory):
    """A folder with two 96x96 crops of real photographs (held-out portraits) as PNG files."""
    from PIL import Image

    from sr_lib.data import bundled_heldout
    folder = tmp_path_factory.mktemp("faces")
    for name, face in bundled_heldout().items():
        array = (face[:, 80:176, 80:176].permute(1, 2, 0).numpy() * 255).round().astype("uint8")
        Image.fromarray(array).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="session")
def random_perceptual():
    """LPIPS and a 64-d FID Inception with RANDOM backbone weights: the code paths of the real metrics,
    offline; their numbers are never scores (the library itself only builds them from cached weights)."""
    import warnings
    from unittest import mock

    import lpips
    import torchvision
    from pytorch_fid.inception import InceptionV3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        lpips_net = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    torch.manual_seed(0)
    with mock.patch("pytorch_fid.inception.load_state_dict_from_url", return_value=None), \
            mock.patch.object(torchvision.models.Inception3, "load_state_dict", lambda self, *a, **k: None):
        inception = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[64]]).eval()
    return {"lpips": lpips_net, "fid": inception, "fid_dims": 64, "unavailable": {}}


# Under pytest-xdist's `--dist loadgroup` (the README's test command) every test is handed out on its own,
# except these, which must share one process: a notebook's cells (one kernel), and the modules whose
# fixtures are expensive (a JupyterLab server, student notebooks, a report) or register a method.
SHARED_MODULES = {"test_browser", "test_student", "test_comparison", "test_new_method"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Groups for pytest-xdist (above), and the slow tests first: xdist hands out groups first, then single
    tests in this order, so the long ones start early and the workers finish together."""
    for item in items:
        module = getattr(getattr(item, "module", None), "__name__", "")
        if item.path.suffix == ".ipynb" or module in SHARED_MODULES:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_configure(config):
    """Under pytest-xdist (`-n 2`, .ci/run) each worker computes with one thread: two workers on two
    cores, no oversubscription (the project's own advice for shared machines, threads.py)."""
    import os
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
