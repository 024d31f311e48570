"""XLA's CPU compiler options that compile faster and run about as fast.

Since jaxlib 0.4.26 XLA's CPU backend compiles each program about twice as
slowly as 0.4.25 did (measured on the test suite's programs: 46 ms against
20 ms per program, most of them small eager operations and networks drawn
layer by layer). Two options bring most of it back:

- ``--xla_cpu_use_fusion_emitters=false``: loop fusions through XLA's older
  LLVM emitters instead of its newer MLIR ones;
- ``--xla_backend_optimization_level=2``: LLVM at -O2 rather than -O3.

Measured on the tests of ``test_train.py`` and ``test_mup.py`` with an empty
compilation cache (493 programs): 22.8 s compiling with the defaults, 16.7 s
with the first option, 19.3 s at level 1 alone, 12.1 s with both (jaxlib
0.4.25: 9.5 s); a ``jax.random.normal`` program 166 ms against 84 ms. The
whole test suite (``make test``, two workers, empty compilation cache): 300 s
with XLA's defaults, 195 s with these. The arithmetic is the same operations
in another order: results agree to float rounding, not bit for bit.

The experiments' programs are fewer and run longer, and there the options
still win overall: ``make all`` from an empty compilation cache, measured one
after the other in one session, took 535 s with them, 684 s with XLA's
defaults, and 520 s on jax 0.4.25. So the command line (``python -m
replication``) and the tests set them; ``import replication`` leaves a user's
own JAX programs alone.
"""
from __future__ import annotations

import os

FAST_COMPILE = ("--xla_cpu_use_fusion_emitters=false", "--xla_backend_optimization_level=2")


def prefer_fast_compile(env=None) -> str:
    """Add ``FAST_COMPILE`` to ``env``'s ``XLA_FLAGS`` (default ``os.environ``); return the result.

    A flag already named there is left as given. Effective only before JAX's
    CPU backend starts in that process (and in the processes it starts with ``env``).
    """
    env = os.environ if env is None else env
    flags = env.get("XLA_FLAGS", "").split()
    named = {f.split("=")[0] for f in flags}
    flags += [f for f in FAST_COMPILE if f.split("=")[0] not in named]
    env["XLA_FLAGS"] = " ".join(flags)
    return env["XLA_FLAGS"]
