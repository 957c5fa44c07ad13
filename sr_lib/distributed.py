"""Data-parallel training across processes with PyTorch's own engine (`torchrun` + DistributedDataParallel).

`torchrun --nproc_per_node N -m sr_lib train ...` starts N processes; each finds its rank in the
environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK). They join one process group (NCCL on GPUs,
gloo on CPU), each wraps its trained networks in DistributedDataParallel, which averages gradients across
ranks during backward, and each draws its own seeded share of crops (batch / N), so one step sees the
configuration's batch. Only rank 0 writes checkpoints and history; every rank's data and random states
go into the checkpoint, so a resumed run with the same number of processes continues exactly. A single
process (plain `python -m sr_lib train`) is world size 1: nothing here changes it.

If a rank fails, it says so in one line (`report_failure`) and torchrun's agent stops the others within
seconds; its summary names the failed rank and quotes its error (the error file `record` writes).
Collectives time out after `TIMEOUT` rather than hanging forever should a rank stall without failing.
"""
import datetime
import gc
import os
import sys

import torch
import torch.distributed as dist

from .errors import UserError

TIMEOUT = datetime.timedelta(minutes=10)


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Rank 0: the process that writes files and prints progress."""
    return rank() == 0


def launched() -> bool:
    """True when torchrun (or another launcher) started several processes."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str) -> str:
    """Join the process group when launched by torchrun; returns this rank's device (cuda:LOCAL_RANK on
    GPUs). A no-op for a single process."""
    if not launched() or dist.is_initialized():
        return device
    end_with_parent()
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise UserError(f"rank {rank()} wants GPU {local}, but only {torch.cuda.device_count()} are visible")
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", timeout=TIMEOUT)
    return device


def end_with_parent() -> None:
    """Ask the kernel to send this process SIGTERM when its parent (torchrun's agent) dies, so that a killed
    agent (SIGKILL: no chance to stop its workers) leaves no orphan ranks writing checkpoints. Linux only;
    elsewhere a no-op. SIGTERM ends a command with its 'interrupted' line (`cli.main`)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the request: act on it now
        os.kill(os.getpid(), signal.SIGTERM)


def report_failure(error: BaseException, checkpoint) -> None:
    """On a run of several processes, one line on stderr naming this rank and its error: the first
    thing to read among the tracebacks of every rank."""
    if launched():
        print(f"error: rank {rank()} of {world_size()} failed ({type(error).__name__}: {error}); torchrun "
              f"stops the other ranks; {checkpoint}, if written, holds the last checkpoint saved before",
              file=sys.stderr)


def teardown() -> None:
    """Leave the process group, after freeing what still refers to it (DistributedDataParallel wrappers
    live in reference cycles: collected later, their gloo work would outlive the group)."""
    if dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def all_agree(flag: bool) -> bool:
    """True only if `flag` is true on every rank: ranks must skip a bad step together, or the ones that
    go on would wait for the others' gradients forever."""
    if world_size() == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0])
    if dist.get_backend() == "nccl":
        value = value.cuda()
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item() > 0)


def average(values: dict[str, float]) -> dict[str, float]:
    """The mean over ranks of each logged number (losses of the whole global batch)."""
    if world_size() == 1 or not values:
        return values
    tensor = torch.tensor(list(values.values()), dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return dict(zip(values, (tensor / world_size()).tolist()))


def gather(obj) -> list:
    """Every rank's `obj`, in rank order (for saving each rank's data and random states)."""
    if world_size() == 1:
        return [obj]
    objects = [None] * world_size()
    dist.all_gather_object(objects, obj)
    return objects


def wrap(module: torch.nn.Module, device: str, sync_batchnorm: bool = False) -> torch.nn.Module:
    """`module` as DistributedDataParallel across the ranks (itself for one process).

    `sync_batchnorm`: BatchNorm statistics over the global batch instead of each rank's share. The study
    used BatchNorm everywhere with a batch of 64; split over 8 GPUs each rank would normalise by the
    statistics of 8 crops, noisier than what the study trained with. SyncBatchNorm restores the global
    batch's statistics at the cost of one extra all-reduce per BatchNorm layer (GPUs only, in PyTorch)."""
    if world_size() == 1:
        return module
    if sync_batchnorm:
        module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    ids = [torch.device(device).index] if device.startswith("cuda") else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return module.module if isinstance(module, torch.nn.parallel.DistributedDataParallel) else module
