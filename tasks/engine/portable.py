"""Portable mode (`trainer.portable`): the same weights and metrics on any x86-64 machine.

Why: CPUs with other vector units round floats differently. Measured here (benchmarks note in
the README; one Xeon with each library capped to emulate older CPUs, torch 2.13.0 CPU build):
digits cycle 0 scored 0.9017 with every library at AVX-512, 0.8942 at AVX2, 0.9035 at SSE4.1,
and 0.8868 with only oneDNN at AVX2 - six different models. Three libraries each change the
result on their own: torch's own vectorised kernels, oneDNN (the convolutions) and MKL (matrix
products). Pinning all three made every emulated machine give byte-identical weights, in cycle 0
and cycle 1, at about 2x the training CPU time (digits fit: 7.1-7.4 CPU s -> 14.0-18.2 s). One
thread is required: two threads gave another result (torch's parallel reductions). Lightning's
`deterministic=True` alone gives repeatability on one machine, not agreement across machines.

Limits: x86-64 with the pinned torch wheel and its bundled MKL and oneDNN; ARM builds have no
MKL, and other libm builds were not tried.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tasks.engine.config import TrainerParams

PORTABLE_ENV = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}
"""Read by torch and MKL at their first operation in a process, not at import (checked)."""


class PortableError(RuntimeError):
    """Portable mode was asked for after this process had already run torch operations."""


def enter(params: TrainerParams) -> None:
    """Settle how this process computes, before it runs any torch operation.

    Always: every torch operation (inference too, not only training) runs on `params.threads`
    threads, so a `flywheel step` process under `dvc repro` computes what the flow computes (a
    fresh process would otherwise use one thread per core: the champion's confidences then
    differed in the last bit and the accepted batch's bytes with them). With `params.portable`,
    also pin the math libraries as above. Raises PortableError naming the variables to export
    when torch already chose its kernels (e.g. a long-lived process that trained before).
    """
    threads = str(params.threads)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = threads
    if params.portable:  # before any MKL call below: MKL reads MKL_CBWR at its first one
        os.environ.update(PORTABLE_ENV)
    if "torch" in sys.modules:  # loaded already (a warm step's fork): the variables came late
        sys.modules["torch"].set_num_threads(params.threads)
    if not params.portable:
        return
    import torch

    torch.backends.mkldnn.set_flags(False)  # convolutions through torch's own code and MKL
    if torch.backends.cpu.get_cpu_capability() != "DEFAULT":
        exports = " ".join(f"{k}={v}" for k, v in PORTABLE_ENV.items())
        raise PortableError(
            "trainer.portable: this process already ran torch with its own kernels; "
            f"export {exports} before starting it"
        )
