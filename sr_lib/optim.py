"""The update every method's training step ends with: backward, clip, step, unless something is not finite."""
import torch

from . import distributed


def guarded_step(optimizer, loss: torch.Tensor, parameters, clip: float | None) -> float | None:
    """Backward and update, returning the gradient norm; None, and no update, if loss or gradient is not finite
    (on any rank: under torchrun all ranks skip together, the gradient norm being the same on every rank)."""
    if not distributed.all_agree(bool(torch.isfinite(loss))):
        return None
    optimizer.zero_grad()
    loss.backward()
    parameters = [p for p in parameters if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(parameters, clip if clip else float("inf"))
    if not torch.isfinite(norm):
        optimizer.zero_grad()
        return None
    optimizer.step()
    return norm.item()
