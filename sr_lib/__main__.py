import os
import sys

from . import distributed
from .cli import main

code = main()
if distributed.launched():
    # A torchrun worker whose work is done and whose process group is destroyed ends here, without the
    # interpreter's finalization: there, gloo's worker threads now and then still held tensors and the
    # process aborted after a run that had written everything ("terminate called without an active
    # exception", 1 in about 30 two-process runs here; pytorch/pytorch#190489).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
