"""The training loop every method shares, readable top to bottom (`train`, `_Run.fit`).

What a method trains and how one step updates it is in its file (`methods/<name>.py`: its `Trainer` and
`Settings`); this module does the rest, the same for all: Adam with the learning rate halved at 50% and
75% of the steps, seeded crops in all 8 orientations, `tqdm.auto` progress, a loss history in the
checkpoint and as JSON beside it, atomic checkpoints every `save_every` steps and at the end, exact
resume (`resume=True`, data stream included), and a guard: a step whose loss or gradient is not finite
is skipped without touching the weights, and 10 in a row stop the run, leaving the last good checkpoint
as it was. Under torchrun the networks run as DistributedDataParallel (`distributed.py`).
"""
import contextlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.distributed.elastic.multiprocessing.errors import record
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import config_of, load_checkpoint, load_model, save_checkpoint
from .config import Config
from .data import training_stream
from .errors import Interrupted, UserError
from .files import OutputLock, atomic_write, writable_folder
from .methods import METHODS, Settings, trainable

MAX_BAD_STEPS = 10


@dataclass
class TrainSettings:
    """One training run. `hyper`: the method's own settings ({field: value}, or its `Settings`; missing
    fields take the method's defaults, `methods/<name>.py`); the other fields are the same for every method."""
    method: str  # a trainable entry of methods.METHODS
    cfg: Config
    out: Path
    steps: int
    hyper: dict | Settings = field(default_factory=dict)
    data: str = "bundled"
    seed: int = 0
    resume: bool = False  # continue from <out>/<method>.pt
    overwrite: bool = False  # start again although <out>/<method>.pt exists
    save_every: int = 200
    show_progress: bool = True
    device: str = "cpu"
    sync_batchnorm: bool = False  # under torchrun: BatchNorm statistics of the global batch (distributed.wrap)
    workers: int = 0  # > 0: decode an image folder on the fly in that many processes (data.FolderStream)
    bf16: bool = False  # forward passes in bfloat16 autocast (see `precision`); not for the flow
    compile: bool = False  # the loss through torch.compile (see `_Run`); for the flow

    def __post_init__(self):
        method = METHODS.get(self.method)
        if method is None or method.trainer is None:
            raise UserError(f"unknown method {self.method!r}; choose one of {trainable()}")
        if not isinstance(self.hyper, method.trainer.Settings):
            self.hyper = method.settings(**dict(self.hyper))
        for option in ("bf16", "compile"):
            if getattr(self, option) and option in method.trainer.refuses:
                raise UserError(f"--{option} is not for {self.method}: {method.trainer.refuses[option]}")
        if self.workers < 0:
            raise UserError(f"workers must be >= 0, got {self.workers}")
        if self.steps < 1 or self.save_every < 1:
            raise UserError(f"steps and save_every must be >= 1, got {self.steps} and {self.save_every}")
        if self.sync_batchnorm and not self.device.startswith("cuda"):
            raise UserError("--sync-bn needs GPUs (PyTorch's SyncBatchNorm runs on CUDA only)")
        if self.resume and self.overwrite:
            raise UserError("--resume continues the checkpoint and --overwrite starts again: choose one")
        if not 0 <= self.seed < 2 ** 63:
            raise UserError(f"--seed must be in 0 .. 2**63 - 1, got {self.seed}")
        if self.cfg.batch % distributed.world_size():
            raise UserError(f"the batch of {self.cfg.batch} does not split over {distributed.world_size()} processes")
        self.out = writable_folder(self.out)

    def recorded(self) -> dict:
        """What the checkpoint keeps of these settings: the data, the seed and the method's own."""
        return {"data": self.data, "seed": self.seed, **asdict(self.hyper)}

# Networks and batches in channels_last memory order: one training step of the `cpu` configuration on
# this project's CPU ran 1.22x (SR), 1.19x (SRGAN) and 1.09x (flow) faster than in the default order (the
# convolutions' fastest layout; `bench` measures the steps in it). Checkpoints load into either order.
MEMORY_FORMAT = torch.channels_last


def precision(settings: TrainSettings):
    """A context for forward passes and losses: bfloat16 autocast when settings.bf16 (about 8 bits of
    mantissa: plenty for a generator's activations, and it halves their memory traffic), else nothing.
    Backward passes run outside it, as PyTorch advises."""
    device = torch.device(settings.device).type
    return lambda: torch.autocast(device, dtype=torch.bfloat16, enabled=settings.bf16)


def learning_rate(base: float, step: int, steps: int) -> float:
    """Constant, halved for the last half of the steps and again for the last quarter (a function of the
    step alone, so a resumed run follows the same schedule)."""
    return base * (0.5 if step >= steps // 2 else 1.0) * (0.5 if step >= 3 * steps // 4 else 1.0)


def optimizers(trainer) -> dict:
    """An Adam optimizer for each network the trainer trains (`fit` sets their learning rates each step)."""
    return {name: torch.optim.Adam(net.parameters(), lr=trainer.settings.learning_rate * trainer.rate_ratio.get(name, 1.0))
            for name, net in trainer.trained.items()}


def checkpoint_path(out: Path, method: str) -> Path:
    return Path(out) / f"{method}.pt"


class _Run:
    """What every loop shares: data stream, optimizers, resume, the step counter, guard, history, saving.

    The method's `trainer` says what is trained (each network gets an Adam optimizer) and what is kept
    (saved and restored only: SRGAN's moving average); the network saved as 'model' is the one the method
    evaluates with.
    """

    def __init__(self, settings: TrainSettings, trainer):
        self.settings, self.trainer = settings, trainer.to(settings.device, MEMORY_FORMAT)
        self.trained, self.kept = trainer.trained, trainer.kept
        # what `trainer.update` calls, as DistributedDataParallel under torchrun (DDP synchronises a forward)
        self.parallel = {name: distributed.wrap(m, settings.device, settings.sync_batchnorm)
                         for name, m in trainer.objectives().items()}
        if settings.compile:  # the (DDP-wrapped) loss, so checkpoints keep the plain modules' weight names
            self.parallel = {name: torch.compile(m) for name, m in self.parallel.items()}
        self.optimizers = optimizers(trainer)
        cfg = settings.cfg
        self.path = checkpoint_path(settings.out, settings.method)
        payload = load_checkpoint(self.path, settings.method, cfg) if settings.resume else None
        if payload is None and self.path.exists() and not settings.overwrite:  # before any image is read
            raise FileExistsError(f"{self.path} exists: pass --resume to continue it or --overwrite to start again")
        self.stream = training_stream(settings.data, cfg.crop, cfg.batch // distributed.world_size(),
                                      stream_seed(settings.seed), settings.workers, distributed.rank(),
                                      pin_memory=settings.device.startswith("cuda"))
        if distributed.rank():  # the other ranks' noise (dequantization, windows) differs from rank 0's
            torch.manual_seed(stream_seed(settings.seed))
        self.step, self.history = 0, []  # step: how many updates are done
        self.saved = None  # the step the checkpoint on disk holds, once this run wrote or resumed one
        if payload is not None:
            self._restore(payload)

    def _modules(self) -> dict:
        return {**self.trained, **self.kept}

    def _restore(self, payload: dict) -> None:
        if payload.get("slim"):
            raise UserError(f"{self.path} is a slim, evaluation-only checkpoint: it cannot resume training")
        missing = [f"{name}_optimizer" for name in self.optimizers if f"{name}_optimizer" not in payload]
        missing += [name for name in self._modules() if name != "model" and name not in payload]
        if missing:
            raise UserError(f"{self.path} cannot resume training: it holds no {', '.join(missing)} (written by "
                             "another tool or trimmed); start again with --overwrite")
        if payload["step"] >= self.settings.steps:
            raise UserError(f"{self.path} is at step {payload['step']}, not before --steps {self.settings.steps}: "
                             "nothing to train; raise --steps to continue")
        now = self.settings.recorded()
        for key, value in payload.get("settings", {}).items():
            if key in now and key != "seed" and value != now[key]:
                print(f"note: resuming with {key} {now[key]!r}; "
                      f"the checkpoint's first {payload['step']} steps used {value!r}")
        states = payload["rank_states"]
        for name, module in self._modules().items():
            module.load_state_dict(payload[name])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(payload[f"{name}_optimizer"])
        self.step, self.history = payload["step"], payload["history"]
        self.saved = self.step
        self.stream.set_state(torch.tensor([self.step]))  # a batch is a function of (seed, rank, step)
        if len(states) == distributed.world_size():
            state = states[distributed.rank()]
            torch.set_rng_state(state["rng"])
            if state.get("cuda_rng") is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state(state["cuda_rng"], torch.device(self.settings.device))
        else:
            torch.manual_seed(stream_seed(self.settings.seed + 1, self.step))
            if distributed.is_main():
                print(f"note: {self.path} was written by {len(states)} process(es), this run has "
                      f"{distributed.world_size()}: weights and optimizers continue, the crops and noise are "
                      "drawn afresh from seeds of the step (not the sequence an uninterrupted run would see)")

    def save(self) -> None:
        """Every rank's data and random states are gathered (a collective: all ranks call this); rank 0
        writes the checkpoint and the history."""
        cuda = self.settings.device.startswith("cuda")
        states = distributed.gather({"data": self.stream.state(), "rng": torch.get_rng_state(),
                                     "cuda_rng": torch.cuda.get_rng_state(torch.device(self.settings.device))
                                     if cuda else None})
        self.saved = self.step  # on every rank: they decide together whether a final save is due
        if not distributed.is_main():
            return
        modules = self._modules()
        extra = {name: m.state_dict() for name, m in modules.items() if name != "model"}
        extra.update({f"{name}_optimizer": opt.state_dict() for name, opt in self.optimizers.items()})
        save_checkpoint(self.path, self.settings.method, METHODS[self.settings.method].network, self.settings.cfg,
                        self.step, modules["model"], rank_states=states, world_size=distributed.world_size(),
                        history=self.history, settings=self.settings.recorded(), **extra)
        text = json.dumps(self.history)
        atomic_write(self.path.with_suffix(".history.json"), lambda tmp: tmp.write_text(text))

    def fit(self) -> Path:
        """Call the trainer's update on each batch until `steps` updates are done; save as we go.
        Ctrl-C or SIGTERM ends it with `Interrupted`, saying which step the checkpoint on disk holds."""
        try:
            return self._fit()
        except KeyboardInterrupt:
            kept = (f"{self.path} holds step {self.saved}" if self.saved is not None
                    else f"no checkpoint was written ({self.path} is as it was)")
            raise Interrupted(f"interrupted at step {self.step}; {kept}") from None

    def _fit(self) -> Path:
        for m in self.trained.values():
            m.train()
        for m in self.kept.values():
            m.eval()
        steps, bad_in_a_row, base_rate = self.settings.steps, 0, self.settings.hyper.learning_rate
        autocast = precision(self.settings)
        bar = tqdm(total=steps, initial=self.step, desc=f"train {self.settings.method}",
                   disable=not (self.settings.show_progress and distributed.is_main()))
        while self.step < steps:
            for name, opt in self.optimizers.items():
                for group in opt.param_groups:
                    group["lr"] = learning_rate(base_rate, self.step, steps) * self.trainer.rate_ratio.get(name, 1.0)
            hr, lr = (t.to(self.settings.device, non_blocking=True).contiguous(memory_format=MEMORY_FORMAT)
                      for t in next(self.stream))
            losses = self.trainer.update(self.parallel, self.optimizers, hr, lr, autocast)
            self.step += 1  # this batch is used up, whether or not it updated the weights
            bar.update()
            if losses is None:
                bad_in_a_row += 1
                if distributed.is_main():
                    print(f"step {self.step}: non-finite loss or gradient, update skipped ({bad_in_a_row} in a row)")
                if bad_in_a_row >= MAX_BAD_STEPS:
                    raise RuntimeError(f"{MAX_BAD_STEPS} non-finite losses in a row: training stopped; {self.path} "
                                       "holds the last checkpoint saved before. Lower --learning-rate.")
                continue
            bad_in_a_row = 0
            losses = distributed.average(losses)  # the global batch's, on every rank
            self.history.append({"step": self.step, **losses})
            bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()})
            if self.step % self.settings.save_every == 0 or self.step == steps:
                self.save()
        if self.saved != self.step:  # the last steps were skipped: the weights are the last good ones
            self.save()
        bar.close()
        return self.path


def starting_network(settings: TrainSettings) -> torch.nn.Module:
    """The trained generator of the method this one `starts_from` (its checkpoint in the same folder)."""
    start = METHODS[settings.method].starts_from
    start_path = checkpoint_path(settings.out, start)
    if not start_path.exists():
        raise FileNotFoundError(f"{settings.method} starts from the {start} generator: train it first "
                                f"({start_path} is missing)")
    gen, start_payload = load_model(start_path, start)
    if config_of(start_payload) != settings.cfg:
        raise UserError(f"{start_path} was trained with another config than {settings.cfg.name!r}")
    return gen


def stream_seed(seed: int, step: int = 0) -> int:
    """The seed of this rank's crops: the run's seed on rank 0 of a fresh run (one process: as always)."""
    return seed + 1_000_003 * distributed.rank() + 7_919 * step


@record  # under torchrun: the error goes into the file torchrun's failure summary quotes
def train(settings: TrainSettings) -> Path:
    """Train settings.method with its trainer; returns the checkpoint's path. Under torchrun
    every process runs this; they join one process group first (`distributed.setup`)."""
    settings.device = distributed.setup(settings.device)
    path = checkpoint_path(settings.out, settings.method)
    try:  # rank 0 writes: it holds the lock on the checkpoint, so no second run writes it at the same time
        with OutputLock(path) if distributed.is_main() else contextlib.nullcontext():
            torch.manual_seed(settings.seed)  # before any network is built: initial weights are reproducible
            method = METHODS[settings.method]
            start = starting_network(settings) if method.starts_from else None
            return _Run(settings, method.trainer(settings.cfg, settings.hyper, start)).fit()
    except Interrupted:
        raise
    except KeyboardInterrupt:  # before the loop started
        raise Interrupted(f"interrupted before the first step; {path} is as it was") from None
    except Exception as error:
        distributed.report_failure(error, path)
        raise
    finally:
        distributed.teardown()
