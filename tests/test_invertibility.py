import json

import pytest
import torch

from sr_lib.cli import main
from sr_lib.config import get_config
from sr_lib.invertibility import (FLOAT32_BOUND, FLOAT64_BOUND, check, randomize_couplings, roundtrip,
                                  scale_coupling_outputs, random_pair)
from sr_lib.methods.flow import ConditionalFlow


@pytest.mark.parametrize("name", ["tiny", "cpu"])
def test_check_meets_documented_bounds(name):
    for dtype, bound in ((torch.float32, FLOAT32_BOUND), (torch.float64, FLOAT64_BOUND)):
        result = check(get_config(name), 64, dtype)
        assert result["max_abs_roundtrip_error"] < bound
        assert max(result["roundtrip_error_per_depth"]) < bound
        cfg = get_config(name)
        assert len(result["roundtrip_error_per_depth"]) == cfg.flow_couplings + cfg.flow_lr_couplings
        assert result["max_abs_logdet_error_vs_autograd"] is None  # too large for a dense Jacobian


def test_check_compares_logdet_with_autograd_on_small_inputs():
    result = check(get_config("tiny"), 16, torch.float64)
    assert result["max_abs_logdet_error_vs_autograd"] < 1e-10


def test_unclamped_scale_overflows_and_clamp_keeps_it_finite():
    hr, lr = random_pair(32, torch.float32)

    def error(clamp, factor):
        flow = ConditionalFlow(get_config("tiny", flow_scale_clamp=clamp))
        return roundtrip(scale_coupling_outputs(randomize_couplings(flow), factor).eval(), hr, lr)

    assert error(None, 1)["max_abs_roundtrip_error"] < FLOAT32_BOUND
    assert error(None, 2000)["max_abs_roundtrip_error"] == float("inf")
    clamped = error(2.0, 2000)
    assert clamped["max_abs_latent"] < float("inf")


def test_check_flow_cli_json(capsys):
    assert main(["check-flow", "--config", "tiny", "--size", "16", "--dtype", "float64", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["max_abs_roundtrip_error"] < FLOAT64_BOUND
    assert result["max_abs_logdet_error_vs_autograd"] < 1e-10


def test_check_flow_cli_rejects_bad_size(capsys):
    assert main(["check-flow", "--config", "tiny", "--size", "30"]) == 2
    assert "--size must be a positive multiple of 4, got 30" in capsys.readouterr().err
    assert main(["check-flow", "--config", "tiny", "--size", "0"]) == 2


def test_check_flow_on_the_shipped_trained_checkpoint(capsys):
    from sr_lib.checkpoint import DEFAULT_CHECKPOINTS
    assert main(["check-flow", "--checkpoint", str(DEFAULT_CHECKPOINTS / "flow.pt"), "--size", "32",
                 "--dtype", "float64", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config"] == "cpu" and result["max_abs_roundtrip_error"] < 1e-9
