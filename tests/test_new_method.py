"""The method contract from the outside: a trained method defined here, in one file's worth of code, shows
up in training, evaluation, the report, the crop comparator, `upscale` and `bench` with no other change."""
import shutil
from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from sr_lib import reach
from sr_lib.bench import bench
from sr_lib.cli import main
from sr_lib.config import SCALE
from sr_lib.data import bundled_heldout
from sr_lib.imaging import upsample
from sr_lib.methods import METHODS, NETWORKS, Method, Settings, Trainer, load_methods, register
from sr_lib.report import report
from sr_lib.widgets import CropComparator

OFFLINE = {"lpips": None, "fid": None, "unavailable": {"lpips": "no weights (test)", "fid": "no weights (test)"}}


# ---------------------------------------------------------------- the new method's file
class Sharpener(nn.Module):
    """Bicubic plus a residual from two 3x3 convs and one 4x pixel shuffle."""

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.PReLU(8), nn.Conv2d(8, 3 * SCALE ** 2, 3, padding=1),
                                  nn.PixelShuffle(SCALE))

    def forward(self, lr):
        return upsample(lr) + self.body(lr)

    @classmethod
    def cost(cls, cfg):
        span = reach.union(reach.bicubic((0, 0), SCALE), reach.conv(reach.conv(reach.finer((0, 0), SCALE), 3), 3))
        return {"params": sum(p.numel() for p in cls(cfg).parameters()),
                "macs_per_hr_pixel": (9 * 3 * 8 + 9 * 8 * 48) / SCALE ** 2, "receptive_field_px": SCALE * reach.side(span)}


@dataclass(frozen=True)
class SharpenerSettings(Settings):
    learning_rate: float = 1e-3


class SharpenerTrainer(Trainer):
    Settings = SharpenerSettings

    def __init__(self, cfg, settings, start):
        super().__init__(cfg, settings, start)
        self.trained = {"model": Sharpener(cfg)}

    def update(self, parallel, optimizers, hr, lr, autocast):
        with autocast():
            loss = F.l1_loss(parallel["model"](lr).float(), hr)
        return self.guarded(optimizers["model"], loss, {"l1": loss})


def sharpen(model, lr, temperature, generator):
    return model(lr)


# ---------------------------------------------------------------- registered for this module only
@pytest.fixture(scope="module")
def sharpener(tiny_checkpoints, tmp_path_factory):
    register(Method("sharpener", "sharpener", sharpen, network="sharpener", trainer=SharpenerTrainer),
             networks={"sharpener": Sharpener})
    folder = tmp_path_factory.mktemp("with_sharpener")
    for file in tiny_checkpoints.iterdir():
        shutil.copy(file, folder)
    try:
        yield folder
    finally:
        del METHODS["sharpener"], NETWORKS["sharpener"]


def test_a_new_trained_method_is_everywhere(sharpener, small_faces, tmp_path):
    # train: the CLI's choices and flags come from the table
    assert main(["--threads", "1", "train", "sharpener", "--config", "tiny", "--steps", "2", "--learning-rate", "0.01",
                 "--out", str(sharpener)]) == 0
    assert "sharpener" in load_methods(sharpener)
    # evaluate and the report: its row, its cost from its own layer shapes
    result = report(tmp_path / "report", sharpener, str(small_faces), OFFLINE, temperatures=(0.8,))
    row = next(r for r in result["rows"] if r["method"] == "sharpener")
    assert row["receptive_field_px"] == 20 and row["params"] == Sharpener.cost(None)["params"] and row["psnr"] > 10
    assert "| sharpener |" in (tmp_path / "report" / "table.md").read_text()
    # the crop comparator
    faces = {name: face[:, 80:176, 80:176] for name, face in bundled_heldout().items()}
    assert "sharpener" in CropComparator(load_methods(sharpener), faces).outputs["astronaut"]
    # upscale --method
    photo = tmp_path / "photo.png"
    Image.fromarray((faces["astronaut"][:, :24, :20].permute(1, 2, 0).numpy() * 255).astype("uint8")).save(photo)
    assert main(["upscale", str(photo), "--method", "sharpener", "--checkpoints", str(sharpener),
                 "--out", str(tmp_path / "up.png")]) == 0
    assert Image.open(tmp_path / "up.png").size == (80, 96)
    # bench: its training step and its inference
    timed = bench(load_methods(sharpener)["sr"].config, batch=2, crop=32, logdet_sides=(2,), output_side=64,
                  min_run_time=0.02)
    assert "sharpener" in timed["training"] and timed["inference"]["sharpener"]["seconds_per_megapixel"] > 0


def test_its_static_cost_is_what_the_probe_measures():
    from sr_lib.complexity import count_macs, receptive_field
    net = Sharpener(None).double().eval()
    (field,) = receptive_field(net, [torch.rand(1, 3, 16, 16, dtype=torch.float64)], [SCALE])
    assert Sharpener.cost(None)["receptive_field_px"] == field
    assert Sharpener.cost(None)["macs_per_hr_pixel"] == count_macs(net, torch.rand(1, 3, 8, 8, dtype=torch.float64)) / 32 ** 2
