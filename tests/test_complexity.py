"""The networks' costs from their layer shapes against what the flop counter and autograd measure."""
import pytest
import torch

from sr_lib.complexity import audit, count_macs, receptive_field
from sr_lib.config import get_config
from sr_lib.methods.flow import ConditionalFlow
from sr_lib.models import Generator


VARIANTS = [{}, {"flow_lr_couplings": 0}, {"flow_couplings": 0}, {"gen_blocks": 2, "flow_couplings": 3, "flow_lr_couplings": 2}]


@pytest.mark.parametrize("overrides", VARIANTS)
def test_static_costs_equal_the_measured_ones(overrides):
    """Each network's cost from its layer shapes (what evaluate, report and upscale use) against the
    flop counter and the autograd receptive-field probe (the oracle), over several architectures."""
    cfg = get_config("tiny", **overrides)
    measured = audit(cfg)["models"]
    for network, cls in (("generator", Generator), ("flow", ConditionalFlow)):
        assert cls.cost(cfg) == {key: measured[network][key] for key in ("params", "macs_per_hr_pixel", "receptive_field_px")}
    assert ConditionalFlow.fields(cfg) == (measured["flow"]["receptive_field_z_px"], measured["flow"]["receptive_field_lr_px"])


def test_generator_field_by_hand(tiny):
    # field in LR px: 1 + 8 (9x9 head) + 2 per 3x3 body conv + 2 (first upsampling conv), then the second
    # upsampling conv adds 2 half-LR px = 1 and the 9x9 tail 8 HR px = 2; the two 2x2 zero-order holds add
    # 1 half-LR px and 1 HR px, 3/4 of an LR px, which reaches one more LR pixel: + 1; times 4 HR px per LR px
    assert Generator.cost(tiny)["receptive_field_px"] == 4 * (1 + 8 + 2 * (2 * tiny.gen_blocks + 1) + 2 + 1 + 2 + 1)


def test_paper_generator_has_the_studys_101772_macs():
    gen = Generator(get_config("paper")).double().eval()
    assert count_macs(gen, torch.rand(1, 3, 16, 16, dtype=torch.float64)) / (64 * 64) == 101_772
    # its field, 192 px + 4 for the zero-order holds, follows from the layer shapes
    # (test_shipped_configurations_costs), which the probe confirms on smaller architectures above


def test_flow_macs_by_hand(tiny):
    h, c, k, k_lr = tiny.flow_hidden, tiny.gen_channels, tiny.flow_couplings, tiny.flow_lr_couplings
    # per half-resolution pixel and step: the 12x12 mixer, the injector's 1x1 conv c -> 24, and the
    # coupling's 3x3 convs 6 -> h -> h -> 12 plus its 1x1 condition projection c -> h
    half_step = 144 + 24 * c + 9 * 6 * h + c * h + 9 * h * h + 9 * h * 12
    # per LR pixel (16 HR px) and step: the same with 48 channels, split 24 | 24
    lr_step = 48 * 48 + 96 * c + 9 * 24 * h + c * h + 9 * h * h + 9 * h * 48
    assert ConditionalFlow.macs_per_hr_pixel(tiny) == Generator.macs_per_hr_pixel(tiny) + k * half_step / 4 + k_lr * lr_step / 16
    assert ConditionalFlow.fields(tiny)[1] > Generator.cost(tiny)["receptive_field_px"]


def test_shipped_configurations_costs():
    """The figures README and the report quote for the cpu and paper configurations, from the layer shapes."""
    cpu, paper = get_config("cpu"), get_config("paper")
    assert Generator.cost(paper)["receptive_field_px"] == 196 and Generator.cost(cpu)["receptive_field_px"] == 132
    assert max(ConditionalFlow.fields(cpu)) == 244
    assert round(ConditionalFlow.macs_per_hr_pixel(cpu) / Generator.macs_per_hr_pixel(cpu), 2) == 1.70
    assert ConditionalFlow.fields(paper) == (292, 452) and ConditionalFlow.cost(paper)["params"] == 2_176_643
    assert ConditionalFlow.macs_per_hr_pixel(paper) == 336_524


def test_flow_field_wrt_z_grows_with_each_level():
    # sampling direction, w.r.t. z, half resolution only: three 3x3 convs per coupling, each +2 half-res px
    one_level = get_config("tiny", flow_lr_couplings=0)
    assert audit(one_level)["models"]["flow"]["receptive_field_z_px"] == 2 * (1 + 6 * one_level.flow_couplings)
    # each LR-level coupling's three 3x3 convs add at least 3 x 2 LR px = 24 HR px
    two_levels = get_config("tiny", flow_lr_couplings=2)
    grown = audit(two_levels)["models"]["flow"]["receptive_field_z_px"] - 2 * (1 + 6 * two_levels.flow_couplings)
    assert grown >= 2 * 24


def test_receptive_field_of_a_plain_conv_stack():
    stack = torch.nn.Sequential(*[torch.nn.Conv2d(1, 1, 5, padding=2) for _ in range(3)]).double()
    (field,) = receptive_field(stack, [torch.rand(1, 1, 32, 32, dtype=torch.float64)], [1])
    assert field == 13


def test_paper_flow_couplings_alone_cost_about_twice_the_generator():
    flow = ConditionalFlow(get_config("paper", flow_lr_couplings=0)).eval()
    z, lr = torch.randn(1, 3, 32, 32), torch.rand(1, 3, 8, 8)
    total = count_macs(lambda a, b: flow.inverse(a, b), z, lr) / (32 * 32)
    steps = total - 101_772  # the base generator's share
    assert 2.0 < steps / 101_772 < 2.2  # the table's 16 couplings of width 64: this project's reading, 2.1x
