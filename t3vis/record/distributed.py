"""Recording under ``torch.distributed``: which process this is, and the few collectives recording needs.

t3vis launches no processes and runs no server of its own: ``torchrun --nproc_per_node=N`` or
``accelerate launch --num_processes N`` starts the processes and sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; the Trainer (or :func:`launched_process_group`,
for ``t3vis ingest``) initialises the process group, gloo on the CPU and nccl on CUDA. Recording then
follows one pattern:

* every process computes its :class:`Shard` of the work (its batches of a checkpoint's examples, the
  training batches its dataloader gave it);
* :func:`gather_results` sends each process's result to the main process (rank 0), a process whose
  computation failed taking part all the same with its failure, so that no process waits forever;
* only the main process projects, opens the store and writes.

Every process must call the same collectives in the same order, so decisions that could differ
between processes (is recording on? is an epoch left to flush?) are agreed with :func:`agree`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from t3vis.errors import T3visError

T = TypeVar("T")


class ShardError(T3visError):
    """The computation of another process of a distributed launch failed."""


@dataclass(frozen=True)
class Shard:
    """This process's part of a distributed launch: its rank among ``world_size`` processes."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """The process that projects and writes (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def owns(self, batch_index: int) -> bool:
        """Whether this process runs batch ``batch_index``: every world_size-th batch, from its rank on.
        Batches are length-sorted, so dealing them out in turn gives each process a similar amount of work."""
        return batch_index % self.world_size == self.rank


SINGLE = Shard()


def current_shard() -> Shard:
    """This process's shard of the initialised process group; ``SINGLE`` when there is none."""
    if dist.is_available() and dist.is_initialized():
        return Shard(rank=dist.get_rank(), world_size=dist.get_world_size())
    return SINGLE


def launched_as_main() -> bool:
    """Whether this process is the main one of its launch, from the launcher's ``RANK`` (before any process
    group exists; true when not launched by torchrun or accelerate)."""
    return int(os.environ.get("RANK", "0")) == 0


@dataclass(frozen=True)
class _Failure:
    """What a process sends in place of its result when its computation raised."""

    rank: int
    message: str


def gather_results(compute: Callable[[], T], shard: Shard, *, what: str) -> list[T] | None:
    """Run ``compute()`` on this process and gather every process's result on the main process, in rank order.

    Returns the list on the main process and None on the others (``[result]`` when not distributed).
    A process whose ``compute`` raised still takes part in the gather, then raises its own error; the
    main process raises :class:`ShardError` naming every process that failed. Tensors are moved to
    the CPU before they are sent.
    """
    if not shard.distributed:
        return [compute()]
    error = None
    try:
        payload = _to_cpu(compute())
    except Exception as exc:  # take part in the gather all the same, or the other processes wait forever
        error, payload = exc, _Failure(shard.rank, f"{type(exc).__name__}: {exc}")
    received = [None] * shard.world_size if shard.is_main else None
    dist.gather_object(payload, received, dst=0)
    if error is not None:
        raise error
    if not shard.is_main:
        return None
    failed = [item for item in received if isinstance(item, _Failure)]
    if failed:
        raise ShardError(f"{what} failed on {len(failed)} of {shard.world_size} processes: "
                         + "; ".join(f"process {item.rank}: {item.message}" for item in failed)
                         + ". See that process's output for the traceback.")
    return received


def agree(flag: bool, shard: Shard) -> list[bool]:
    """Every process's ``flag``, in rank order, on every process (``[flag]`` when not distributed): a decision
    that all processes take the same way, e.g. ``all(agree(...))``."""
    if not shard.distributed:
        return [bool(flag)]
    flags = [None] * shard.world_size
    dist.all_gather_object(flags, bool(flag))
    return flags


def share_main_weights(model: torch.nn.Module, shard: Shard) -> None:
    """Give every process the main process's parameters and buffers (a classification head initialised at random
    differs from process to process otherwise)."""
    if not shard.distributed:
        return
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)


def _to_cpu(value: Any) -> Any:
    """The same nested lists, tuples and dicts with every tensor on the CPU (nothing stays on an accelerator)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(item) for item in value)
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    return value


def process_device(device: str | None) -> str | None:
    """The device of this process under a launch: ``cuda:LOCAL_RANK`` for ``"cuda"`` or none given when CUDA is there,
    else the given one."""
    if device not in (None, "cuda") or "LOCAL_RANK" not in os.environ or not torch.cuda.is_available():
        return device
    return f"cuda:{int(os.environ['LOCAL_RANK'])}"


@contextmanager
def launched_process_group(device: str | None = None) -> Iterator[Shard]:
    """The process group of a ``torchrun`` / ``accelerate launch`` launch (``WORLD_SIZE`` > 1 in the environment),
    initialised for the duration (nccl on a CUDA ``device``, else gloo) and destroyed after; yields this process's
    shard, ``SINGLE`` when the process was not launched so (or the group exists already: it is left alone)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        yield current_shard()
        return
    if not dist.is_available():
        raise ShardError("This process was launched as one of several (WORLD_SIZE > 1) but this build of torch has "
                         "no torch.distributed. Run it as a single process.")
    device = process_device(device)
    cuda = device is not None and device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        yield current_shard()
    finally:
        dist.destroy_process_group()
