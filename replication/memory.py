"""Memory: estimate what a kernel, a Jacobian or an ensemble needs before building it.

Every estimate here is of the arrays a computation holds at its peak, in
bytes, counted from shapes alone (nothing is allocated to find out):

- closed-form kernel (neural-tangents' ``kernel_fn``) of ``n1 x n2`` inputs:
  per pair of inputs it keeps the NNGP and NTK entries of every spatial
  position pair it tracks (one for an MLP; ``H W`` for a CNN read out by
  flattening, whose kernel stays diagonal in space; ``(H W)^2`` for global
  average pooling, which needs every pair of positions), and a nonlinearity's
  update holds a few more arrays of that size: ``KERNEL_ARRAYS`` in all;
- empirical NTK of ``n1 x n2`` inputs in blocks of ``b`` points per side:
  the parameters, the output, and per block either each point's Jacobian
  (``b x P`` per side, Jacobian contraction) or each point's activations and
  cotangents (``b x sum of layer widths``, structured derivatives);
- an ensemble of ``M`` networks of ``P`` parameters trained together:
  ``M P`` times the parameters, their gradients, the initial parameters kept
  for the records and the optimizer's state (none for SGD, one copy with
  momentum, two for Adam).

A computation that would not fit in ``budget`` bytes is batched (inputs in
smaller blocks, ensemble members in chunks); one that would not fit even at
the smallest batch is refused with ``MemoryBudgetError``, whose message is
one line saying what was asked, what it needs and what is available. The
default budget is half the memory available now: the machine's free memory
on CPU, the device's free memory on an accelerator.
"""
from __future__ import annotations

import math
import os

import jax

from replication.host_memory import free_held_bytes

BYTES = 4                 # float32
KERNEL_ARRAYS = 8         # NNGP, NTK and up to six temporaries of their shape per pair
BUDGET_FRACTION = 0.5     # of the memory available when the estimate is made


class MemoryBudgetError(MemoryError):
    """A computation that cannot fit even when batched; the message is one line."""


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def available_bytes(device=None) -> int:
    """Memory free now: the accelerator's (``memory_stats``) or, on CPU, the machine's.

    On CPU this counts the memory this process's allocator holds free for
    reuse (``replication.host_memory``) as available, as it is to this process.
    """
    device = device or jax.local_devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 + free_held_bytes()
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") + free_held_bytes()


def default_budget() -> int:
    return int(BUDGET_FRACTION * available_bytes())


def spatial_pairs(spec, input_shape) -> int:
    """Entries a closed-form kernel tracks per pair of inputs (see the module docstring)."""
    if getattr(spec, "readout", None) is None or len(input_shape) <= 2:
        return 1
    positions = math.prod(input_shape[1:-1])
    return positions if spec.readout == "flatten" else positions**2


def closed_form_bytes(spec, input_shape, n1: int, n2: int, batch: int | None = None) -> int:
    """Peak bytes of the closed-form kernel of ``n1 x n2`` inputs, whole or in ``batch x batch`` blocks."""
    b1, b2 = (n1, n2) if batch is None else (min(batch, n1), min(batch, n2))
    working = KERNEL_ARRAYS * BYTES * b1 * b2 * spatial_pairs(spec, input_shape)
    return working + BYTES * n1 * n2  # and the assembled result


def plan_closed_form(spec, input_shape, n1: int, n2: int, budget: int | None = None,
                     devices: int = 1) -> int | None:
    """``None`` if the whole kernel fits in ``budget``; else the largest block size that does.

    Blocks are square, at most ``n2``, and run ``devices`` at a time (one per
    device, each with ``budget`` of its own). Raises ``MemoryBudgetError`` if
    even one input pair per block, or the result alone, does not fit.
    """
    budget = default_budget() if budget is None else budget
    what = f"closed-form kernel of {n1} x {n2} inputs of shape {tuple(input_shape[1:])}"
    result = BYTES * n1 * n2
    if closed_form_bytes(spec, input_shape, n1, n2) <= budget:
        return None
    if result + closed_form_bytes(spec, input_shape, 1, 1) - BYTES > budget:
        needs = result + KERNEL_ARRAYS * BYTES * spatial_pairs(spec, input_shape)
        raise MemoryBudgetError(f"{what} needs at least {gib(needs)} even in blocks of one input; "
                                f"the budget is {gib(budget)}")
    per_pair = KERNEL_ARRAYS * BYTES * spatial_pairs(spec, input_shape)
    b = int(math.isqrt(max((budget - result) // per_pair, 1)))
    return max(1, min(b, n2, -(-n1 // devices)))


def empirical_ntk_bytes(n_params: int, layer_widths, n1: int, n2: int, block: int,
                        implementation: str = "structured") -> int:
    """Peak bytes of the empirical NTK of ``n1 x n2`` inputs in blocks of ``block`` points."""
    b1, b2 = min(block, n1), min(block, n2)
    if implementation == "structured":
        per_point = 2 * sum(layer_widths)  # activations and cotangents of every layer
    else:
        per_point = n_params               # a Jacobian row
    return BYTES * (n_params + n1 * n2 + (b1 + b2) * per_point + b1 * b2)


def plan_empirical_ntk(n_params: int, layer_widths, n1: int, n2: int, block: int,
                       implementation: str = "structured", budget: int | None = None) -> int:
    """The largest block size at most ``block`` that fits; ``MemoryBudgetError`` if one point does not."""
    budget = default_budget() if budget is None else budget
    b = block
    while b > 1 and empirical_ntk_bytes(n_params, layer_widths, n1, n2, b, implementation) > budget:
        b = max(1, b // 2)
    needs = empirical_ntk_bytes(n_params, layer_widths, n1, n2, b, implementation)
    if needs > budget:
        raise MemoryBudgetError(
            f"empirical NTK ({implementation}) of {n1} x {n2} inputs for {n_params:,} parameters "
            f"needs at least {gib(needs)} even one input at a time; the budget is {gib(budget)}")
    return b


OPTIMIZER_COPIES = {"sgd": 0, "momentum": 1, "adam": 2}


def ensemble_bytes(n_params: int, members: int, optimizer_copies: int = 1) -> int:
    """Peak bytes of ``members`` networks trained at once: parameters, gradients, init, state."""
    return BYTES * members * n_params * (3 + optimizer_copies)


def plan_ensemble(n_params: int, members: int, optimizer_copies: int = 1,
                  budget: int | None = None) -> int:
    """How many members to train at once (all, or chunks); ``MemoryBudgetError`` if not even one."""
    budget = default_budget() if budget is None else budget
    one = ensemble_bytes(n_params, 1, optimizer_copies)
    if one > budget:
        raise MemoryBudgetError(
            f"an ensemble member of {n_params:,} parameters needs {gib(one)} to train; "
            f"the budget is {gib(budget)}")
    return min(members, budget // one)
