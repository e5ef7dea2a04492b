"""Which process of a data-parallel run this is, before and after Lightning sets up DDP.

Several processes run the same command (`torchrun --nproc_per_node=N`, `srun` under SLURM, or
Lightning's own launcher on one node): every one trains on its share of each batch, and only
global rank 0 writes what a run leaves (its lock, config, summary, exported file, W&B run); the
others wait for it at the end of each stage, so the next stage reads finished files.
"""

from __future__ import annotations

import os

import torch.distributed as dist

from quantsurvey.errors import ConfigError


def global_rank() -> int:
    """This process's rank: torch's once DDP is set up, else what the launcher put in the
    environment (torchrun: RANK; SLURM's srun: SLURM_PROCID; Lightning's launcher on one node:
    LOCAL_RANK)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    for key in ("RANK", "SLURM_PROCID"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    if int(os.environ.get("NODE_RANK", "0") or 0) > 0:
        raise ConfigError("NODE_RANK > 0 without RANK: for several nodes launch the processes "
                          "with torchrun or srun (see the README, 'Several GPUs').")
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def is_rank_zero() -> bool:
    return global_rank() == 0


def world_size() -> int:
    """The run's processes: torch's once DDP is set up, else the launcher's (torchrun:
    WORLD_SIZE; srun: SLURM_NTASKS, read only in a task srun started, where SLURM_PROCID is set)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    if os.environ.get("WORLD_SIZE", "").isdigit():
        return int(os.environ["WORLD_SIZE"])
    slurm = os.environ.get("SLURM_PROCID", ""), os.environ.get("SLURM_NTASKS", "")
    if slurm[0].isdigit() and slurm[1].isdigit():
        return int(slurm[1])
    return 1


def local_world_size() -> int | None:
    """The processes on this node, when a launcher says (torchrun, SLURM); else None."""
    for key in ("LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE"):
        value = os.environ.get(key, "")
        if value.isdigit():
            return int(value)
    return None


def rank_seed(seed: int, rank: int) -> int:
    """Process `rank`'s own seed of a data-parallel run; rank 0 (and a single process) keeps
    `seed`, so single-process runs draw what they always drew."""
    return (seed + rank * 0x9E3779B97F4A7C15) % 2**63


def check_global_batch(batch_size: int, processes: int) -> None:
    """data.batch_size is the global batch of a data-parallel run: it must split evenly."""
    if processes > 1 and batch_size % processes:
        raise ConfigError(
            f"data.batch_size={batch_size} is the global batch of a data-parallel run and must "
            f"split evenly over its {processes} processes: choose a multiple of {processes}.")


def check_node_count(num_nodes: int) -> None:
    """trainer.num_nodes must be the nodes the launcher started processes on (Lightning would
    otherwise wait for processes that never come, or number the ranks wrongly)."""
    local, total = local_world_size(), world_size()
    if local and total > 1 and local * num_nodes != total:
        nodes = f"{total // local}" if total % local == 0 else f"{total}/{local}"
        raise ConfigError(
            f"trainer.num_nodes={num_nodes}, but the launcher started {total} processes, {local} "
            f"per node, i.e. {nodes} node(s): set trainer.num_nodes={nodes} (with "
            f"hydra/launcher=slurm_ddp: the same as hydra.launcher.nodes).")


def barrier() -> None:
    """Wait for every process of the run (nothing to wait for in a single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
