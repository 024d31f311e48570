"""A workaround for a miscompilation in XLA's CPU backend (jaxlib 0.4.25).

XLA's ``onednn-matmul-rewriter`` pass replaces a dot followed by a scalar
multiply and a broadcast bias add, ``x @ W * c + b``, by one oneDNN matmul
call with fused "linear" and "bias" post-ops. In the jaxlib this study pins
(0.4.25, the last one under which neural-tangents' structured derivatives
work), that call returns wrong numbers for some shapes: measured, a jitted
``(16, 1024) @ (1024, 1024) * 0.04 + b`` is off by up to 3 in entries of
size 1, while ``(1, 1024)`` rows and width 512 are right. Every affine layer
of this study's networks has exactly that form (forward multiplier times a
matmul, plus a scaled bias), so training and any jitted forward pass at
width >= 1024 would be silently wrong. Later XLA releases reworked this
fusion; here the pass is disabled through ``XLA_FLAGS`` before JAX
initialises its backend, and XLA's own dot emitter is used instead.
``tests/test_xla_cpu.py`` fails if the workaround stops taking effect.
"""
from __future__ import annotations

import os
import re
import sys
import warnings

PASS = "onednn-matmul-rewriter"
_FLAG = "--xla_disable_hlo_passes"


def flags_with_pass_disabled(flags: str) -> str:
    """``flags`` (an ``XLA_FLAGS`` value) with ``PASS`` added to the disabled passes."""
    match = re.search(rf"{_FLAG}=(\S*)", flags)
    if match is None:
        return f"{flags} {_FLAG}={PASS}".strip()
    passes = [p for p in match.group(1).split(",") if p]
    if PASS in passes:
        return flags
    return flags[:match.start(1)] + ",".join(passes + [PASS]) + flags[match.end(1):]


def configure() -> None:
    """Disable the pass for this process; warn if JAX's backend already started without it."""
    os.environ["XLA_FLAGS"] = flags_with_pass_disabled(os.environ.get("XLA_FLAGS", ""))
    # Only a JAX already imported can have started its backend; importing it
    # here just to look would cost every command a second.
    xla_bridge = sys.modules.get("jax._src.xla_bridge")
    if xla_bridge is not None and getattr(xla_bridge, "_backends", None):
        warnings.warn(
            f"JAX's backend started before `import replication`, so XLA_FLAGS cannot disable "
            f"the {PASS} pass, which miscompiles x @ W * c + b on CPU in this jaxlib; import "
            "replication (or set XLA_FLAGS) before the first JAX computation.", stacklevel=3)
