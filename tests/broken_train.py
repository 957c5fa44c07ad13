"""`python -m sr_lib` broken on purpose, run under torchrun by test_distributed.py. The first argument
says how: `stop`, every rank stops cleanly right after the checkpoint at step 2, as if the machine had
been switched off there; `fail`, rank 1 raises an error in its third update, as a lost GPU would."""
import sys

from sr_lib import distributed, optim, train
from sr_lib.cli import main

mode, argv = sys.argv[1], sys.argv[2:]
if mode == "stop":
    save = train._Run.save

    def save_then_stop(self):
        save(self)
        if self.step == 2:
            raise SystemExit(0)
    train._Run.save = save_then_stop
elif mode == "fail":
    step = optim.guarded_step  # every trainer's update calls it there
    calls = 0

    def failing_step(*args, **kwargs):
        global calls
        calls += 1
        if distributed.rank() == 1 and calls == 3:
            raise RuntimeError("simulated failure of rank 1")
        return step(*args, **kwargs)
    optim.guarded_step = failing_step
sys.exit(main(argv))
