"""Receptive fields from the layer shapes, along one axis: which input positions an output position sees.

A span is the inclusive range (first, last) of positions one feature map's entries at a set of output
positions depend on. Each function maps the span a layer's *output* needs to the span of its *input*, so
a network's field is its layers applied from the output back to the input. Every network here is
translation-equivariant and treats both axes alike, so one axis gives the square field. The same figures
are measured with autograd in `complexity` (the test oracle, and notebook 04's audit).
"""
Span = tuple[int, int]


def conv(span: Span, kernel: int) -> Span:
    """A 'same' convolution of odd `kernel`: half a kernel more on each side."""
    return span[0] - kernel // 2, span[1] + kernel // 2


def widen(span: Span, by: int) -> Span:
    """`by` positions more on each side (a stack of 3x3 convs widens by one each)."""
    return span[0] - by, span[1] + by


def finer(span: Span, factor: int = 2) -> Span:
    """From a map `factor` times finer (pixel shuffle, unsqueeze) to the coarser map it came from."""
    return span[0] // factor, span[1] // factor


def hold(span: Span) -> Span:
    """The 2x2 zero-order hold (`models.ZeroOrderHold`): output i is the mean of inputs i - 1 and i."""
    return span[0] - 1, span[1]


def bicubic(span: Span, scale: int) -> Span:
    """Bicubic upsampling by `scale` (align_corners=False): output i samples input (i + 0.5) / scale - 0.5
    with taps from one below to two above its integer part."""
    first, last = ((i + 0.5) / scale - 0.5 for i in span)
    return int(first // 1) - 1, int(last // 1) + 2


def union(*spans: Span) -> Span:
    return min(s[0] for s in spans), max(s[1] for s in spans)


def side(span: Span) -> int:
    return span[1] - span[0] + 1
