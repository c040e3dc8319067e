"""Data-parallel training over several processes: several GPUs, several machines of a
cluster, or several CPU sockets, with PyTorch's ``torchrun`` as the launcher.

``torchrun`` (``torch.distributed.run``) starts one process per GPU or CPU share and
gives each its place in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``). :func:`join_process_group` reads it; a process
started without it is a world of one and everything here does nothing. The training
itself is PyTorch's ``DistributedDataParallel`` (Li et al., "PyTorch Distributed:
Experiences on Accelerating Data Parallel Training", VLDB 2020): each process computes
the gradient of its share of every batch, the gradients are averaged across processes
(NCCL on CUDA GPUs, Gloo on CPUs), and every process applies the same step to its own
copy of the weights. :class:`Ranks` adds what a run needs beyond that: one clock, one
val decision and one check that the copies stayed equal.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

#: How long a process waits at a collective for the others, e.g. while rank 0 alone
#: computes a teacher's probabilities (28 minutes for the bundled ensemble on 2 CPU cores).
TIMEOUT = datetime.timedelta(hours=2)


class Ranks:
    """This process's place in a data-parallel run, and the collectives a run needs.

    In a world of one (``world == 1``, no process group) every method returns its input
    and communicates nothing, so single-process training runs exactly as it would
    without this class.

    Attributes:
        rank: this process's index in [0, world); rank 0 writes checkpoints and logs.
        world: the number of processes.
        local_rank: its index among the processes of its machine.
    """

    def __init__(self, rank: int = 0, world: int = 1, device: torch.device | None = None,
                 owned: bool = False, local_rank: int = 0):
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self._device = device or torch.device("cpu")  # where collectives' tensors live (CUDA for NCCL)
        self._owned = owned  # this object started the process group, and ends it

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the process that writes files and prints."""
        return self.rank == 0

    def from_main(self, value: float) -> float:
        """Rank 0's ``value`` (a float, sent as float64), on every rank."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self._device)
        dist.broadcast(t, src=0)
        return float(t.item())

    def share(self, tensor: torch.Tensor) -> torch.Tensor:
        """Rank 0's ``tensor`` on every rank; the other ranks pass a tensor of the same shape
        and dtype to receive into. Returns a tensor on the collectives' device."""
        if self.world == 1:
            return tensor
        buf = tensor.to(self._device).contiguous()
        dist.broadcast(buf, src=0)
        return buf

    def total(self, *values: float) -> list[float]:
        """The sums over all ranks of ``values`` (float64: counts up to 2**53 stay exact)."""
        if self.world == 1:
            return [float(v) for v in values]
        t = torch.tensor(values, dtype=torch.float64, device=self._device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in ``DistributedDataParallel`` (its gradients averaged across ranks in
        ``backward``), or ``model`` itself in a world of one. DDP broadcasts rank 0's
        weights to the others as it wraps them."""
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        cuda = self._device.type == "cuda"
        return DistributedDataParallel(model, device_ids=[self._device.index] if cuda else None)

    def check_same(self, model: torch.nn.Module, when: str) -> None:
        """Raise if this rank's weights are not rank 0's (each tensor's sum of absolute
        values compared, relative tolerance 1e-6): DDP keeps the copies equal only as long
        as every rank applies the same steps, so a rank that took another learning rate
        or skipped a step shows here instead of in a checkpoint that is quietly wrong.

        Raises:
            RuntimeError: some rank's weights differ from rank 0's; names the rank.
        """
        if self.world == 1:
            return
        mine = torch.stack([p.detach().double().abs().sum() for p in model.parameters()]).to(self._device)
        gathered = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(gathered, mine)
        for r, theirs in enumerate(gathered):
            if not torch.allclose(theirs, gathered[0], rtol=1e-6, atol=0.0):
                raise RuntimeError(f"the weights of rank {r} differ from rank 0's {when}: the "
                                   f"{self.world} processes no longer train one model")

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        """End the process group if :func:`join_process_group` started it."""
        if self._owned and dist.is_initialized():
            dist.destroy_process_group()
            self._owned = False


def join_process_group(device: torch.device) -> tuple[Ranks, torch.device]:
    """Join the run ``torchrun`` started this process in, if any.

    Args:
        device: the device the run asked for (``cpu`` or ``cuda``/``cuda:N``). Under
            ``torchrun`` a CUDA run puts each process on the GPU of its ``LOCAL_RANK``
            (``cuda:N``'s index is replaced) and talks over NCCL; a CPU run talks over Gloo.

    Returns:
        (ranks, device): this process's :class:`Ranks` (a world of one without
        ``torchrun``'s ``WORLD_SIZE`` above 1) and the device it trains on.

    Raises:
        ValueError: ``LOCAL_RANK`` names a GPU this machine does not have (more processes
            per node than GPUs).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ValueError(f"process {rank} has LOCAL_RANK {local}, but this machine has "
                             f"{torch.cuda.device_count()} CUDA GPU(s): start at most that many "
                             "processes per node (torchrun --nproc-per-node)")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    return Ranks(dist.get_rank(), dist.get_world_size(), device, owned=owned, local_rank=local), device
