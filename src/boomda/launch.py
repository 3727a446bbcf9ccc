"""``boomda run --nproc N``: the checks before a data-parallel run, and the launch of the run
again under ``torchrun`` (see docs/scale.md)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING

from boomda.errors import ConfigError

if TYPE_CHECKING:
    from boomda.resolve import ResolvedRun

#: set by the launcher for its processes (their stderr is a pipe): "1" when the launcher's
#: stderr is a terminal, so that they show progress bars on it
TERMINAL_ENV = "BOOMDA_STDERR_TERMINAL"


def check_parallel(run: ResolvedRun, nproc: int) -> None:
    """What a data-parallel run of the checked config ``run`` needs, checked before the
    processes start."""
    import torch

    from boomda import distributed
    from boomda.methods import METHODS
    from boomda.runtime import resolve_device

    config, options = run.config, run.options
    if config.train.batch_size % nproc:
        raise ConfigError(f"--nproc {nproc}: batch_size {config.train.batch_size} is not "
                          f"divisible by {nproc} (each process takes an equal share of the "
                          f"global batch)")
    distributed.check_supported(METHODS[config.train.method], options,
                                config.train.select_epoch)
    device = resolve_device(config.train.device)  # CUDA asked for and absent: an error here
    gpus = torch.cuda.device_count()
    if device.type == "cuda" and gpus < nproc:
        raise ConfigError(f"--nproc {nproc}: one GPU per process, and this machine has {gpus}")


def launch_torchrun(nproc: int, argv: list[str]) -> int:
    """``boomda run ...`` again under ``torchrun --standalone --nproc-per-node nproc``. The
    processes' output passes through; torchrun's own report of a failed process (a traceback)
    is replaced by one line, the processes having said what failed."""
    rest, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--nproc":
            skip = True
        elif not item.startswith("--nproc="):
            rest.append(item)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", str(nproc), "-m", "boomda", *rest]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    env[TERMINAL_ENV] = "1" if sys.stderr.isatty() else "0"
    launcher = re.compile(rb"^(\[?[EWI]\d{4} |Traceback \(most recent call last\)|"
                          rb"torch\.distributed\.elastic)")
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    quiet, pending, said = False, b"", set()
    stderr = proc.stderr
    assert isinstance(stderr, io.BufferedReader), "a pipe with the default buffering"
    for chunk in iter(lambda: stderr.read1(4096), b""):
        pending += chunk
        # forward whole segments (ended by a newline, or tqdm's carriage return)
        *segments, pending = re.split(rb"(?<=[\n\r])", pending)
        for segment in segments:
            quiet = quiet or bool(launcher.match(segment))
            if segment.startswith(b"boomda: "):  # every process says the same: once
                if segment in said:
                    continue
                said.add(segment)
            if not quiet:
                sys.stderr.buffer.write(segment)
        sys.stderr.buffer.flush()
    if pending and not quiet:
        sys.stderr.buffer.write(pending)
    code = proc.wait()
    if code != 0:
        print(f"boomda: error: the data-parallel run in {nproc} processes failed; the "
              f"processes' errors are above", file=sys.stderr)
        return 2
    return 0
