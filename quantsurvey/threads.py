"""How many torch threads a run uses. torch's default (every core) oversubscribes a machine that
runs several jobs at once: measured on 2 cores, 200 LeNet batches took 51 s with two jobs at 2
threads each against 4.6 s at 1 thread each. The default is the cores this process may use
divided by the jobs running at once."""

from __future__ import annotations

import os

import torch


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (cgroups, taskset)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads(parallel_jobs: int = 1) -> int:
    return max(1, available_cores() // max(1, parallel_jobs))


def set_threads(threads: int | None, parallel_jobs: int = 1) -> int:
    """Set torch's intra-op threads; returns the number in use. None: $OMP_NUM_THREADS when the
    user set it (torch already follows it), else the default above."""
    if threads is None and os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    n = default_threads(parallel_jobs) if threads is None else threads
    torch.set_num_threads(n)
    return n
