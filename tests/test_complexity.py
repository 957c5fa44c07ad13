"""The audit's measured figures against closed-form counts."""
import torch

from sr_lib.complexity import audit, count_macs, receptive_field
from sr_lib.config import get_config
from sr_lib.models import ConditionalFlow, Generator


def generator_macs_per_hr_pixel(ch: int, blocks: int) -> float:
    """Closed form: per LR pixel the head, the 2*blocks+1 body convs and the first upsampling conv;
    the second upsampling conv runs at 2x (4 per LR px), the 9x9 tail at 4x (16 per LR px)."""
    per_lr_pixel = 81 * 3 * ch + (2 * blocks + 1) * 9 * ch * ch + 9 * ch * 4 * ch
    return per_lr_pixel / 16 + 9 * ch * 4 * ch / 4 + 81 * ch * 3


def generator_receptive_field_hr(blocks: int) -> int:
    """1 + 8 (9x9 head) + 2 per 3x3 body conv + 2 (first upsampling conv), in LR px; the second
    upsampling conv adds 2 half-LR px = 1, the 9x9 tail 8 HR px = 2: times 4 HR px per LR px."""
    return 4 * (1 + 8 + 2 * (2 * blocks + 1) + 2 + 1 + 2)


def test_generator_figures_match_closed_form(tiny):
    gen = audit(tiny)["models"]["generator"]
    assert gen["macs_per_hr_pixel"] == generator_macs_per_hr_pixel(tiny.gen_channels, tiny.gen_blocks)
    assert gen["receptive_field_px"] == generator_receptive_field_hr(tiny.gen_blocks)
    assert gen["params"] == sum(p.numel() for p in Generator(tiny).parameters())


def test_paper_generator_macs_are_the_tables_101772():
    macs = count_macs(Generator(get_config("paper")).eval(), torch.rand(1, 3, 16, 16)) / (64 * 64)
    assert macs == generator_macs_per_hr_pixel(64, 8) == 101_772


def test_paper_generator_receptive_field_is_the_seeds_192_px():
    assert generator_receptive_field_hr(8) == 192


def test_flow_figures_match_closed_form(tiny):
    result = audit(tiny)["models"]["flow"]
    h, c, k, b = tiny.flow_hidden, tiny.flow_cond_channels, tiny.flow_couplings, tiny.flow_encoder_blocks
    # per half-resolution pixel: per step the 12x12 mixer, 3x3 convs 6->h->h->12 and the 1x1 cond projection;
    # the encoder at LR (a quarter of a half-res pixel): 3x3 conv 3->h, 2b 3x3 convs h->h, 1x1 conv h->4c
    per_half_pixel = (k * (144 + 9 * 6 * h + c * h + 9 * h * h + 9 * h * 12)
                      + (9 * 3 * h + 2 * b * 9 * h * h + h * 4 * c) / 4)
    assert result["macs_per_hr_pixel"] == per_half_pixel / 4
    # sampling direction, w.r.t. z: three 3x3 convs per coupling, each +2 half-res px: 1 + 6k half-res px
    assert result["receptive_field_z_px"] == 2 * (1 + 6 * k)
    assert result["receptive_field_lr_px"] >= result["receptive_field_z_px"]


def test_receptive_field_of_a_plain_conv_stack():
    stack = torch.nn.Sequential(*[torch.nn.Conv2d(1, 1, 5, padding=2) for _ in range(3)]).double()
    (field,) = receptive_field(stack, [torch.rand(1, 1, 32, 32, dtype=torch.float64)], [1])
    assert field == 13


def test_paper_flow_keeps_the_field_and_reports_the_cost():
    flow = ConditionalFlow(get_config("paper")).eval()
    z, lr = torch.randn(1, 3, 32, 32), torch.rand(1, 3, 8, 8)
    macs = count_macs(lambda a, b: flow.inverse(a, b), z, lr) / (32 * 32)
    assert 1.9 < macs / 101_772 < 2.1  # the documented 2.0x, not the seed's 1.07x
