"""neural-tangents 0.6.5 on current JAX: fill in what current JAX no longer has, and nothing else.

neural-tangents 0.6.5 is its last release. It was written against JAX 0.4.23
to 0.4.25: as released it imports TensorFlow at import time, does not import
at all on JAX 0.6 or newer (``jax.core.Jaxpr`` is gone), and its
structured-derivatives NTK reaches into JAX's private autodiff internals.
``install()``, called when ``replication`` is imported, patches each
missing name as ``neural_tangents`` is imported (``apply()`` does it at once). Every patch checks
first and does nothing where the name still exists, so on the JAX that
neural-tangents was written for the layer is a no-op.

The patches, what each replaces and since when:

1. ``neural_tangents.experimental`` imports TensorFlow and tf2jax to convert
   TensorFlow models; the study has no TensorFlow. A stand-in module whose
   two functions raise on use.
2. ``jax.core.{Jaxpr, JaxprEqn, Literal, Primitive, Var}`` moved to
   ``jax.extend.core`` (gone from ``jax.core`` since JAX 0.6).
3. ``jax.util`` (``safe_map``, ``safe_zip``) is no longer a module (gone by
   0.10): pure-Python equivalents, with the same length checks.
4. ``jax.interpreters.ad.zeros_like_p`` is gone (JAX no longer emits it);
   neural-tangents only uses it as a dictionary key: a fresh primitive.
5. ``jax.interpreters.ad.{source_info_util, config}`` re-exports (gone since
   0.4.26) and ``reducing_transposes`` (unused since 0.4.38, gone by 0.10):
   ``jax.extend.source_info_util``, ``jax.config``, an empty table.
6. ``jax.core.DShapedArray`` (dynamic shapes) is gone: a class nothing is an
   instance of.
7. ``Primitive.map_primitive`` is gone (``pmap`` is no longer a map
   primitive): ``False`` for every primitive.
8. The private ``ad.linearize(WrappedFun, *primals)`` that neural-tangents'
   ``_get_primals_out_and_pullback`` calls changed signature (JAX 0.4.26 on).
   The same linear jaxpr (inputs: parameter tangents; constants: residuals)
   comes from public ``jax.linearize`` and ``jax.make_jaxpr`` of its linear
   function, and goes to neural-tangents' own backward pass as before.
9. Primitives whose transpose exists only as JAX's newer accumulator-style
   rule (``ad.fancy_transposes``: ``slice``, ``dynamic_slice`` and others by
   0.10) fail neural-tangents' lookup of an old-style rule; the newer rule is
   wrapped into an old-style one.

Patches 1-4 make ``import neural_tangents`` work; 5-9 the structured
derivatives. Patches 8 and 9 lean on JAX internals that JAX may remove:
``tests/test_compat.py`` fails the day they stop agreeing with Jacobian
contraction, and ``replication.kernels.empirical_ntk`` falls back to
NTK-vector products (public JAX only) with one warning rather than crash.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

APPLIED: list[str] = []   # the patches this JAX needed, by number and name


def install() -> None:
    """Apply the patches when ``neural_tangents`` is imported (at once if it already is).

    ``import replication`` calls this: it costs nothing until neural-tangents
    is imported (``python -m replication.provenance`` imports no JAX), and
    then runs before neural-tangents' own code does.
    """
    if "neural_tangents" in sys.modules:
        apply()
    elif not any(isinstance(f, _BeforeNeuralTangents) for f in sys.meta_path):
        sys.meta_path.insert(0, _BeforeNeuralTangents())


def apply() -> list[str]:
    """Apply every patch this JAX needs, now (idempotent); return their names."""
    _patch_jax()
    import neural_tangents._src.empirical as empirical

    _linearize(empirical)
    return APPLIED


class _BeforeNeuralTangents(importlib.abc.MetaPathFinder):
    """Patches JAX as ``neural_tangents`` starts importing, and its empirical module as it loads."""

    def find_spec(self, name, path, target=None):
        if name == "neural_tangents":
            _patch_jax()
        elif name == "neural_tangents._src.empirical":
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchedAfterLoading(spec.loader)
            return spec
        return None


class _PatchedAfterLoading(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        _linearize(module)


_JAX_PATCHED = []


def _patch_jax() -> None:
    if _JAX_PATCHED:
        return
    _JAX_PATCHED.append(True)
    _no_tensorflow()
    import jax

    if jax.__version_info__ < (0, 4, 26):
        return   # the JAX that neural-tangents 0.6.5 was written for: nothing to fill in
    _public_names(jax)
    _private_autodiff(jax)
    _fancy_transposes()


def _no_tensorflow() -> None:
    if "neural_tangents.experimental" in sys.modules:
        return
    try:
        import tensorflow  # noqa: F401
        import tf2jax  # noqa: F401
        return
    except ImportError:
        pass

    def unavailable(*args, **kwargs):
        raise ImportError("neural_tangents.experimental needs tensorflow and tf2jax, "
                          "which this study does not install")

    stand_in = types.ModuleType("neural_tangents.experimental")
    stand_in.empirical_ntk_fn_tf = stand_in.get_apply_fn_and_params = unavailable
    sys.modules["neural_tangents.experimental"] = stand_in
    APPLIED.append("1 neural_tangents.experimental without TensorFlow")


def _public_names(jax) -> None:
    import jax.core
    import jax.extend.core as extend_core

    moved = [n for n in ("Jaxpr", "JaxprEqn", "Literal", "Primitive", "Var") if not hasattr(jax.core, n)]
    for name in moved:
        setattr(jax.core, name, getattr(extend_core, name))
    if moved:
        APPLIED.append("2 jax.core names from jax.extend.core")
    try:
        import jax.util  # noqa: F401
    except ImportError:
        def safe_map(f, *args):
            if len({len(a) for a in args}) != 1:
                raise ValueError(f"safe_map: lengths differ: {[len(a) for a in args]}")
            return list(map(f, *args))

        def safe_zip(*args):
            if len({len(a) for a in args}) != 1:
                raise ValueError(f"safe_zip: lengths differ: {[len(a) for a in args]}")
            return list(zip(*args))

        util = types.ModuleType("jax.util")
        util.safe_map, util.safe_zip = safe_map, safe_zip
        jax.util = sys.modules["jax.util"] = util
        APPLIED.append("3 jax.util")


def _private_autodiff(jax) -> None:
    import jax.core
    import jax.extend.core as extend_core
    import jax.extend.source_info_util as source_info_util
    import jax.interpreters.ad as ad

    primitive = extend_core.Primitive
    fills = {"zeros_like_p": lambda: primitive("zeros_like"), "source_info_util": lambda: source_info_util,
             "config": lambda: jax.config, "reducing_transposes": dict}
    filled = [name for name in fills if not hasattr(ad, name)]
    for name in filled:
        setattr(ad, name, fills[name]())
    if filled:
        APPLIED.append("4-5 jax.interpreters.ad: " + ", ".join(filled))
    if not hasattr(jax.core, "DShapedArray"):
        jax.core.DShapedArray = type("DShapedArray", (), {})
        APPLIED.append("6 jax.core.DShapedArray")
    if not hasattr(primitive, "map_primitive"):
        primitive.map_primitive = False
        APPLIED.append("7 Primitive.map_primitive")


def _linearize(empirical) -> None:
    import jax

    if jax.__version_info__ < (0, 4, 26):
        return
    if getattr(empirical._get_primals_out_and_pullback, "_public_linearize", False):
        return
    empirical._get_primals_out_and_pullback = _get_primals_out_and_pullback
    APPLIED.append("8 linear jaxpr from jax.linearize")


def _get_primals_out_and_pullback(fn, mode, _j_rules, _s_rules, _fwd, *primals_in):
    """``fn``'s outputs at ``primals_in`` and the pullback of its linear part, as neural-tangents'
    structured derivatives expect them, from public JAX."""
    import jax
    import jax.interpreters.ad as ad
    import neural_tangents._src.empirical as empirical
    from jax.tree_util import tree_flatten, tree_unflatten

    primals_flat, in_tree = tree_flatten(primals_in)
    out_trees = []

    def fn_flat(*args):
        out_flat, out_tree = tree_flatten(fn(*tree_unflatten(in_tree, args)))
        out_trees.append(out_tree)
        return out_flat

    # As neural-tangents' own: the jaxpr holds the layers' primitives, not calls of jitted ones.
    with jax.disable_jit():
        primals_out_flat, f_jvp = jax.linearize(fn_flat, *primals_flat)
        closed = jax.make_jaxpr(f_jvp)(*primals_flat)
    jaxpr, consts = closed.jaxpr, closed.consts

    def pullback_fn(*cts_in):
        cts_in, _ = tree_flatten(cts_in)
        cts_out = empirical._backward_pass(
            jaxpr, mode=mode, consts=consts,
            primals_in=[ad.UndefinedPrimal(v.aval) for v in jaxpr.invars],
            cotangents_in=tuple(cts_in), _j_rules=_j_rules, _s_rules=_s_rules, _fwd=_fwd)
        return tree_unflatten(in_tree, cts_out)

    return tree_unflatten(out_trees[0], primals_out_flat), pullback_fn


_get_primals_out_and_pullback._public_linearize = True


def _fancy_transposes() -> None:
    import jax.interpreters.ad as ad

    try:
        from jax._src.interpreters import ad as ad_internal
        fancy, accumulator = ad_internal.fancy_transposes, ad_internal.ValAccum
    except (ImportError, AttributeError):
        return
    if getattr(ad.get_primitive_transpose, "_wraps_fancy", False):
        return
    old_style = ad.get_primitive_transpose

    def get_primitive_transpose(p):
        try:
            return old_style(p)
        except NotImplementedError:
            if p not in fancy or p.call_primitive:
                raise

        def rule(ct, *args, **params):
            accs = [accumulator(a.aval) if isinstance(a, ad.UndefinedPrimal) else a for a in args]
            fancy[p](ct, *accs, **params)
            return [a.freeze() if isinstance(a, accumulator) else None for a in accs]

        return rule

    get_primitive_transpose._wraps_fancy = True
    ad.get_primitive_transpose = get_primitive_transpose
    APPLIED.append("9 old-style transposes from accumulator-style rules")


def enable_x64():
    """Float64 inside a ``with`` block: ``jax.enable_x64`` (new), ``jax.experimental.enable_x64`` (old)."""
    import jax

    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64 as old
    return old()
