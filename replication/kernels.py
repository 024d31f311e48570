"""Kernels of finite networks, and the closed forms they are compared with.

For a network ``f(theta, x)`` with ``k`` outputs, the empirical kernels are

    NTK   Theta(x, x') = (1/k) sum_o  <d f_o(x)/d theta, d f_o(x')/d theta>
    NNGP  K(x, x')     = sigma_w^2 <phi(x), phi(x')> + sigma_b^2

where ``phi`` is the input of the readout layer (flattened or pooled for a
CNN) and ``sigma_w^2`` (per fan-in unit) and ``sigma_b^2`` are the variances of
the readout's effective weights and bias at init. The NNGP above is one
network's conditional output covariance given its features, i.e. exactly
what the closed form's last layer computes in expectation; it converges to
the closed-form NNGP with fluctuations of order width^(-1/2). Averaging outer
products of outputs over independent initialisations
(``monte_carlo_nngp``) estimates the same limit with a Monte Carlo error of
order ``sqrt(2 / n_samples)`` that does not fall with width.

All functions return ``(n1, n2)`` arrays for inputs ``x1`` of ``n1`` and
``x2`` of ``n2`` points (``x2=None`` means ``x2 = x1``).
"""
from __future__ import annotations

import functools
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from replication.parametrization import affine_scaling

NTK_IMPLEMENTATIONS = ("structured", "jacobian", "ntk_vector_products", "auto")


def _nt():
    import neural_tangents as nt

    return nt


@functools.lru_cache(maxsize=64)
def _ntk_fn(apply_fn: Callable, implementation: str):
    nt = _nt()
    impl = {
        "structured": nt.NtkImplementation.STRUCTURED_DERIVATIVES,
        "jacobian": nt.NtkImplementation.JACOBIAN_CONTRACTION,
        "ntk_vector_products": nt.NtkImplementation.NTK_VECTOR_PRODUCTS,
        "auto": nt.NtkImplementation.AUTO,
    }[implementation]
    # vmap_axes=0: every network here treats the points of a batch
    # independently, which lets structured derivatives skip cross-point blocks.
    fn = nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0, implementation=impl)
    return jax.jit(fn)


def _program(apply_fn: Callable, implementation: str):
    try:
        return _ntk_fn(apply_fn, implementation)
    except TypeError:  # an unhashable apply_fn cannot be cached
        return _ntk_fn.__wrapped__(apply_fn, implementation)


STRUCTURED_FAILED: list[str] = []   # why structured derivatives stopped working on this JAX, if they did


def _with_fallback(apply_fn: Callable, implementation: str) -> Callable:
    """The NTK program; structured derivatives fall back to NTK-vector products if they fail.

    Structured derivatives lean on JAX's private autodiff internals
    (``replication.compat``, patches 8 and 9). Should a JAX release break
    them, the study goes on with NTK-vector products (public JAX only, the
    same kernel, slower), says so once, and ``tests/test_compat.py`` fails.
    """
    if implementation != "structured":
        return _program(apply_fn, implementation)

    def call(*args):
        if not STRUCTURED_FAILED:
            try:
                return _program(apply_fn, "structured")(*args)
            except (MemoryError, KeyboardInterrupt):
                raise
            except Exception as e:  # noqa: BLE001 - any failure inside JAX's internals
                # Inputs at fault fail NTK-vector products too, and raise here: only a failure
                # of structured derivatives alone switches them off.
                kernel = _program(apply_fn, "ntk_vector_products")(*args)
                STRUCTURED_FAILED.append(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
                warnings.warn(f"structured-derivatives NTK failed on jax {jax.__version__} "
                              f"({STRUCTURED_FAILED[0]}); empirical_ntk uses NTK-vector products "
                              "from now on", RuntimeWarning, stacklevel=3)
                return kernel
        return _program(apply_fn, "ntk_vector_products")(*args)

    return call


def _blocks(n: int, block_size: int):
    return [(i, min(i + block_size, n)) for i in range(0, n, block_size)]


def _pad_to(x: jax.Array, n: int) -> jax.Array:
    if x.shape[0] == n:
        return x
    pad = jnp.broadcast_to(x[:1], (n - x.shape[0], *x.shape[1:]))
    return jnp.concatenate([x, pad])


def empirical_ntk(
    apply_fn: Callable,
    params: Any,
    x1: jax.Array,
    x2: jax.Array | None = None,
    *,
    implementation: str = "structured",
    block_size: int = 256,
) -> jax.Array:
    """Empirical NTK ``Theta(x1, x2)`` of ``apply_fn(params, x)``, shape ``(n1, n2)``.

    Traced over outputs (mean over the ``k`` output units, as the closed form
    is per output). ``implementation`` picks neural-tangents' algorithm:
    ``"structured"`` (structured derivatives, Novak et al. 2022; the fast
    one), ``"jacobian"`` (Jacobian contraction), ``"ntk_vector_products"`` or
    ``"auto"``. Inputs are processed in blocks of ``block_size`` points per
    side (padded so one compiled shape serves every block).
    """
    if implementation not in NTK_IMPLEMENTATIONS:
        raise ValueError(f"unknown NTK implementation {implementation!r}; "
                         f"allowed: {', '.join(NTK_IMPLEMENTATIONS)}")
    symmetric = x2 is None
    x2 = x1 if symmetric else x2
    ntk_fn = _with_fallback(apply_fn, implementation)
    n1, n2 = x1.shape[0], x2.shape[0]
    if n1 <= block_size and n2 <= block_size:
        return ntk_fn(x1, None if symmetric else x2, params)
    b1, b2 = min(block_size, n1), min(block_size, n2)
    out = np.zeros((n1, n2), dtype=np.result_type(x1.dtype, jax.tree_util.tree_leaves(params)[0].dtype))
    for i0, i1 in _blocks(n1, b1):
        xa = _pad_to(x1[i0:i1], b1)
        for j0, j1 in _blocks(n2, b2):
            if symmetric and j1 <= i0:
                continue  # the lower triangle is filled by symmetry below
            xb = _pad_to(x2[j0:j1], b2)
            out[i0:i1, j0:j1] = np.asarray(ntk_fn(xa, xb, params))[: i1 - i0, : j1 - j0]
    if symmetric:
        out = np.triu(out) + np.triu(out, 1).T
    return jnp.asarray(out)


@functools.lru_cache(maxsize=16)
def _ntk_row_fn(apply_fn: Callable):
    def row(params, x0, x):
        f0, pullback = jax.vjp(lambda p: apply_fn(p, x0)[0], params)
        k = f0.shape[-1]
        total = 0.0
        for o in range(k):  # k is static and small: one gradient and one JVP per output
            (g,) = pullback(jnp.zeros_like(f0).at[o].set(1.0))
            total = total + jax.jvp(lambda p: apply_fn(p, x)[:, o], (params,), (g,))[1]
        return total / k

    return jax.jit(row)


def empirical_ntk_row(apply_fn: Callable, params: Any, x0: jax.Array, x: jax.Array) -> jax.Array:
    """``Theta(x0, x)`` for one point ``x0`` (shape ``(1, ...)``) against ``x``: shape ``(n,)``.

    The same kernel as ``empirical_ntk(apply_fn, params, x0, x)[0]``, computed
    without Jacobians: ``Theta(x0, x) = d/de f(params + e g, x)`` along the
    gradient ``g`` of ``f(x0)``, one reverse pass at ``x0`` and one
    forward-mode pass over ``x`` per output unit (traced over outputs).
    Measured at width 10000, depth 3 on CPU: 0.6 s against 1.6 s for
    neural-tangents' structured derivatives, equal to 2e-7 relative.
    """
    if x0.shape[0] != 1:
        raise ValueError(f"x0 must hold one point, got shape {tuple(x0.shape)}")
    try:
        fn = _ntk_row_fn(apply_fn)
    except TypeError:  # an unhashable apply_fn cannot be cached
        fn = _ntk_row_fn.__wrapped__(apply_fn)
    return fn(params, x0, x)


_DERIVATIVES = {
    "relu": (lambda h: np.maximum(h, 0.0), lambda h: (h > 0).astype(np.float64)),
    "erf": (lambda h: _erf(h), lambda h: 2 / np.sqrt(np.pi) * np.exp(-h * h)),
}


def _erf(h):
    from scipy.special import erf

    return erf(h)


def one_hidden_layer_ntk(spec, params: Any, x1, x2=None, *, chunk: int = 8192) -> np.ndarray:
    """The empirical NTK of a one-hidden-layer ``MLP`` (``depth=1``, one output) in float64, by its formula.

    For ``f(x) = m_a sum_i a_i sigma(h_i(x)) + m_c c`` with ``h_i(x) = m_W <w_i, x> + m_b beta_i``
    (each ``m`` the layer's forward multiplier of ``spec``'s parameterization),

        Theta(x, x') = m_a^2 sum_i [sigma(h_i(x)) sigma(h_i(x'))
                                    + a_i^2 sigma'(h_i(x)) sigma'(h_i(x')) (m_W^2 <x, x'> + m_b^2)] + m_c^2,

    the sum over the gradients by ``a``, ``(w, beta)`` and ``c``. Units are summed ``chunk`` at a time:
    memory ``O(n chunk)``, time ``O(n1 n2 width)``, so the widest networks' kernels cost seconds,
    where automatic differentiation would hold the whole ``(n, parameters)`` Jacobian. Everything is
    float64: the kernel's deviation from its limit at width ``2^20`` (about 1e-3) is far above its
    rounding. ``activation`` is ``relu`` or ``erf``; ``x1`` ``(n1, d)``, ``x2`` ``(n2, d)``.
    """
    if spec.depth != 1 or spec.out_dim != 1:
        raise ValueError(f"one_hidden_layer_ntk takes an MLP with depth=1 and out_dim=1; got depth={spec.depth}, "
                         f"out_dim={spec.out_dim}")
    if spec.activation not in _DERIVATIVES:
        raise ValueError(f"one_hidden_layer_ntk: no formula for activation {spec.activation!r}; "
                         f"allowed: {', '.join(_DERIVATIVES)}")
    sigma, derivative = _DERIVATIVES[spec.activation]
    p = params["params"]
    w = np.asarray(p["dense_0"]["kernel"], np.float64)          # (d, width)
    a = np.asarray(p["readout"]["kernel"], np.float64)[:, 0]    # (width,)
    d, width = w.shape
    beta = np.asarray(p["dense_0"]["bias"], np.float64) if "bias" in p["dense_0"] else np.zeros(width)
    hidden = affine_scaling(spec.parameterization, spec.W_std, spec.b_std, d, "input", spec.width_ratio)
    readout = spec.readout_scaling(width)
    symmetric = x2 is None
    x1 = np.asarray(x1, np.float64)
    x2 = x1 if symmetric else np.asarray(x2, np.float64)
    inner = hidden.weight_multiplier ** 2 * x1 @ x2.T + hidden.bias_multiplier ** 2 * (spec.b_std is not None)
    out = np.zeros((len(x1), len(x2)))
    for s in range(0, width, chunk):
        u = slice(s, s + chunk)
        h1 = hidden.weight_multiplier * x1 @ w[:, u] + hidden.bias_multiplier * beta[u]
        phi1, g1 = sigma(h1), derivative(h1) * a[u]
        if symmetric:   # x2 = x1: the second pre-activation is the first
            out += phi1 @ phi1.T + (g1 @ g1.T) * inner
        else:
            h2 = hidden.weight_multiplier * x2 @ w[:, u] + hidden.bias_multiplier * beta[u]
            out += phi1 @ sigma(h2).T + (g1 @ (derivative(h2) * a[u]).T) * inner
    bias = readout.bias_multiplier ** 2 if spec.b_std is not None else 0.0
    return readout.weight_multiplier ** 2 * out + bias


def readout_input(module, params, x: jax.Array) -> jax.Array:
    """``phi(x)``: what the readout layer receives (flattened or pooled for a CNN), ``(n, fan_in)``."""
    return module.apply(params, x, readout_input=True).reshape(x.shape[0], -1)


def nngp_of_features(spec, phi1: jax.Array, phi2: jax.Array | None = None) -> jax.Array:
    """``sigma_w^2 <phi1, phi2> + sigma_b^2`` with the readout's effective init variances of ``spec``."""
    s = spec.readout_scaling(phi1.shape[-1])
    return s.weight_variance * phi1 @ (phi1 if phi2 is None else phi2).T + s.bias_variance


def empirical_nngp(module, params, x1: jax.Array, x2: jax.Array | None = None) -> jax.Array:
    """One network's NNGP: ``sigma_w^2 <phi(x1), phi(x2)> + sigma_b^2``, shape ``(n1, n2)``.

    ``module`` is a ``replication.arch`` network (``spec.flax()``), whose spec
    tells the readout's init variances under its parameterization.
    """
    phi1 = readout_input(module, params, x1)
    return nngp_of_features(module.spec, phi1, None if x2 is None else readout_input(module, params, x2))


def over_initialisations(module, keys: jax.Array, x: jax.Array, fn: Callable, *,
                         chunk_size: int = 256):
    """``fn(params)`` for networks ``module`` initialised from each key; outputs stacked.

    Each network's parameters come from one RNG call
    (``module.spec.init_in_one_draw``: the law of ``module.init``, compiled
    several times faster). The initialisations are vmapped ``chunk_size`` at
    a time under one jit, so memory holds one chunk of networks.
    """
    spec, dtype = module.spec, module.param_dtype
    batched = jax.jit(jax.vmap(lambda key: fn(spec.init_in_one_draw(key, x, dtype))))
    chunks = [batched(keys[i:i + chunk_size]) for i in range(0, keys.shape[0], chunk_size)]
    return jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *chunks)


@functools.lru_cache(maxsize=16)
def _output_gram_fn(module):
    def chunk(keys, x, n1):
        def outputs(key):
            return module.apply(module.init(key, x[:1]), x)

        f = jax.vmap(outputs)(keys)  # (chunk, n1 + n2, k)
        return jnp.einsum("sik,sjk->ij", f[:, :n1], f[:, n1:])

    return jax.jit(chunk, static_argnums=2)


def monte_carlo_nngp(
    module,
    key: jax.Array,
    x1: jax.Array,
    x2: jax.Array | None = None,
    *,
    n_samples: int = 256,
    chunk_size: int = 32,
) -> jax.Array:
    """Output covariance over ``n_samples`` independent initialisations.

    ``K(x1, x2) ~= (1 / (n_samples k)) sum_s sum_o f_o(theta_s, x1) f_o(theta_s, x2)``,
    with ``theta_s = module.init(key_s, .)``. The initialisations are vmapped
    ``chunk_size`` at a time, so memory is bounded by one chunk of networks.
    Its Monte Carlo error is of order ``sqrt(2 / n_samples)`` relative to the
    kernel (the variance of a product of two correlated Gaussians).
    """
    if n_samples < 1 or chunk_size < 1:
        raise ValueError("n_samples and chunk_size must be positive integers")
    x2 = x1 if x2 is None else x2
    x = jnp.concatenate([x1, x2])
    gram = _output_gram_fn(module)
    keys = jax.random.split(key, n_samples)
    total = 0.0
    for start in range(0, n_samples, chunk_size):
        total = total + gram(keys[start:start + chunk_size], x, x1.shape[0])
    return total / (n_samples * module.spec.out_dim)


@functools.lru_cache(maxsize=64)
def _block_program(kernel_fn, get):
    """One compiled program per kernel function and ``get``, reused for every block of a kernel."""
    return jax.jit(lambda a, b: kernel_fn(a, b, get))


def blocked(kernel_fn: Callable, x1: jax.Array, x2: jax.Array | None = None, get="ntk", *,
            batch_size: int, devices: int = -1):
    """``kernel_fn(x1, x2, get)`` computed in ``batch_size x batch_size`` blocks, on the host.

    What ``nt.batch`` does for one process, spread over every process of the
    run as well (``replication.distributed``): row blocks go round-robin to
    the processes, and each process sends its row's column blocks to its
    ``devices`` local devices (``-1``: all of them), one block per device at
    a time, fetching each block to the host as it is done. Every process then
    gets the whole kernel. Each block is ``kernel_fn`` of two blocks of
    inputs (``x2=None`` means ``x2 = x1``, as in ``nt.batch``): one compiled
    program for every block, so the numbers do not depend on how many
    devices or processes share the work. Inputs are padded to whole blocks
    and the padding cut from the result. ``get`` is ``"nngp"``, ``"ntk"`` or
    a tuple of them (then a tuple of arrays comes back).
    """
    from replication import distributed

    x2 = x1 if x2 is None else x2
    n1, n2 = x1.shape[0], x2.shape[0]
    b = batch_size
    rows, cols = -(-n1 // b), -(-n2 // b)
    xa, xb = _pad_to(x1, rows * b), _pad_to(x2, cols * b)
    local = jax.local_devices()
    local = local if devices == -1 else local[:max(devices, 1)]
    count, index = jax.process_count(), jax.process_index()
    program = _block_program(kernel_fn, get)
    names = get if isinstance(get, tuple) else (get,)
    mine = range(index, rows, count)
    out = np.zeros((len(names), -(-rows // count), b, cols * b), dtype=x1.dtype)
    for q, i in enumerate(mine):
        a = xa[i * b:(i + 1) * b]
        for wave in range(0, cols, len(local)):
            done = []
            for dev, j in zip(local, range(wave, min(wave + len(local), cols))):
                k = program(jax.device_put(a, dev), jax.device_put(xb[j * b:(j + 1) * b], dev))
                done.append((j, k if isinstance(get, tuple) else (k,)))
            for j, k in done:
                for g in range(len(names)):
                    out[g, q, :, j * b:(j + 1) * b] = np.asarray(k[g])
    if distributed.several():
        out = distributed.allgather_host(out)          # (processes, g, row blocks each, b, cols * b)
        out = np.moveaxis(out, 0, 2)                   # row block i = q * processes + p sits at [q, p]
    whole = out.reshape(len(names), -1, cols * b)[:, :n1, :n2]
    return tuple(whole) if isinstance(get, tuple) else whole[0]


def closed_form(spec, x1: jax.Array, x2: jax.Array | None = None, get: str = "ntk", *,
                batch_size: int | None = None, devices: int = -1,
                budget: int | None = None) -> jax.Array:
    """neural-tangents' infinite-width ``"nngp"`` or ``"ntk"`` of ``spec``, shape ``(n1, n2)``.

    The kernel's memory is estimated first (``replication.memory``). If it
    fits in ``budget`` (default: half the memory available) it is computed
    whole; if not, or if ``batch_size`` is given, it is computed by
    ``blocked`` in blocks of ``batch_size`` inputs per side, spread over
    ``devices`` local devices (``-1``: all of them) with one block per
    device at a time, and over the run's processes. A kernel that cannot fit
    even one input pair per block is refused with ``MemoryBudgetError``
    before anything is allocated.
    """
    from replication import memory

    if get not in ("nngp", "ntk"):
        raise ValueError(f"get must be 'nngp' or 'ntk', got {get!r}")
    _, _, kernel_fn = spec.stax()
    n1 = x1.shape[0]
    n2 = n1 if x2 is None else x2.shape[0]
    count = jax.local_device_count() if devices == -1 else devices
    if batch_size is None:
        batch_size = memory.plan_closed_form(spec, x1.shape, n1, n2, budget, devices=count)
        if batch_size is None:
            return kernel_fn(x1, x2, get)
    return jnp.asarray(blocked(kernel_fn, x1, x2, get, batch_size=batch_size, devices=devices))
