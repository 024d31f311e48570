"""One architecture spec, two worlds: a Flax network and its infinite-width limit.

A spec (``MLP`` or ``CNN``) describes a network once, as a list of layers.
``spec.flax()`` builds a ``flax.linen`` module from that list and
``spec.stax()`` builds neural-tangents' ``(init_fn, apply_fn, kernel_fn)``
from the same list, so the finite network and its closed-form NNGP / NTK
cannot disagree about the architecture. Init variances and forward multipliers
come from ``replication.parametrization`` (never Flax's default initialisers),
and for the same parameters both sides compute the same function::

    spec = MLP(width=512, depth=2, activation="relu", W_std=2**0.5, b_std=0.1)
    module = spec.flax()
    params = module.init(key, x)                      # {"params": {...}}
    init_fn, apply_fn, kernel_fn = spec.stax()
    module.apply(params, x) == apply_fn(spec.params_to_stax(params), x)

``depth`` counts hidden layers (convolutions for ``CNN``); every affine layer
uses the same ``W_std`` and ``b_std`` (``b_std=None``: no biases), including the
readout to ``out_dim`` outputs. Under ``parameterization="standard"`` the
closed-form NTK depends on the width, which ``stax()`` always takes from the
spec. Inputs are ``(n, d)`` for ``MLP`` and ``(n, H, W, C)`` images for ``CNN``;
a ``CNN`` also takes its images' ``k x k`` patches (``CNN.patches``), on which
``stax_on_patches`` and ``apply_on_patches`` are the same network, cheaper.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import math
import threading
from dataclasses import dataclass
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from replication.parametrization import (OPTIMIZERS, affine_scaling, check_parameterization,
                                         learning_rate_factors)


@dataclass(frozen=True)
class Activation:
    """A pointwise nonlinearity, as a JAX function and as a stax layer."""

    fn: Callable[[jax.Array], jax.Array]
    stax_layer: Callable[[], Any]


def _stax():
    # neural-tangents imports TensorFlow (about 6 s); imported on first use only.
    from neural_tangents import stax

    return stax


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(jax.nn.relu, lambda: _stax().Relu()),
    "erf": Activation(jax.scipy.special.erf, lambda: _stax().Erf()),
    "gelu": Activation(lambda x: jax.nn.gelu(x, approximate=False),
                       lambda: _stax().Gelu(approximate=False)),
}
READOUTS = ("flatten", "gap")


# ---------------------------------------------------------------------------
# The layer list both sides are built from.

@dataclass(frozen=True)
class Affine:
    """Dense layer (``kernel_size == ()``) or stride-1 SAME convolution.

    ``role`` (``input``, ``hidden`` or ``readout``) says which of its fans grow
    with the width, which muP's scalings depend on.
    """

    name: str
    features: int
    kernel_size: tuple[int, ...] = ()
    role: str = "hidden"


@dataclass(frozen=True)
class Nonlinearity:
    name: str


@dataclass(frozen=True)
class Pool:
    """Spatial reduction before a CNN's readout: ``flatten`` or ``gap``."""

    kind: str


Layer = Affine | Nonlinearity | Pool
_CONV_DIMS = ("NHWC", "HWIO", "NHWC")  # stax.Conv's default for 2-D images


# ---------------------------------------------------------------------------
# The Flax side.

class AffineLayer(nn.Module):
    """``z = m_W * conv_or_matmul(x, w) + m_b * beta`` with explicit init.

    Kernel shape ``kernel_size + (fan_in_channels, features)`` (Flax and stax
    agree: ``(in, out)`` for dense, HWIO for conv); bias shape ``(features,)``.
    ``feature_major=True`` (dense only): ``x`` is ``(fan_in, n)`` and so is
    the output, ``(features, n)``; the same function, see ``Network``.
    ``on_patches=True`` (convolution only): ``x`` is ``CNN.patches`` of the
    images, ``(n, H, W, C k k)``, and the convolution is the product of each
    pixel's patch with ``w`` laid out as ``(C k k, features)``; the same
    function of the same parameters, see ``CNN.apply_on_patches``.
    """

    features: int
    kernel_size: tuple[int, ...]
    W_std: float
    b_std: float | None
    parameterization: str
    param_dtype: Any = jnp.float32
    role: str = "hidden"
    width_ratio: float = 1.0
    zero_init: bool = False
    feature_major: bool = False
    on_patches: bool = False

    @nn.compact
    def __call__(self, x):
        in_channels = x.shape[0] if self.feature_major else x.shape[-1]
        if self.on_patches:
            in_channels //= math.prod(self.kernel_size)
        fan_in = in_channels * math.prod(self.kernel_size)
        s = affine_scaling(self.parameterization, self.W_std, self.b_std, fan_in, self.role,
                           self.width_ratio)
        init = nn.initializers.zeros if self.zero_init else nn.initializers.normal(s.weight_init_std)
        w = self.param("kernel", init,
                       (*self.kernel_size, in_channels, self.features), self.param_dtype)
        if self.on_patches:
            # The patches' entries are ordered (C, k, k): the filters' input channels go first.
            y = x @ jnp.moveaxis(w, -2, 0).reshape(fan_in, self.features)
        elif self.kernel_size:
            y = lax.conv_general_dilated(x, w, (1,) * len(self.kernel_size), "SAME",
                                         dimension_numbers=_CONV_DIMS)
        elif self.feature_major:
            y = lax.dot_general(w, x, (((0,), (0,)), ((), ())))  # w^T x
        else:
            y = x @ w
        y = s.weight_multiplier * y
        if self.b_std is not None:
            beta = self.param("bias", nn.initializers.normal(s.bias_init_std),
                              (self.features,), self.param_dtype)
            y = y + s.bias_multiplier * (beta[:, None] if self.feature_major else beta)
        return y


class Network(nn.Module):
    """The Flax network of a spec; ``readout_input=True`` stops before the readout.

    Inputs and outputs are batch-major, ``(n, ...)``. Inside
    ``training_layout()``, a network of dense layers only (``MLP``) carries
    its activations feature-major, ``(width, n)``: the same function, in the
    layout that XLA's CPU backend differentiates fastest (see there).
    ``on_patches=True``: a ``CNN`` whose inputs are ``spec.patches(x)``.
    """

    spec: "MLP | CNN"
    param_dtype: Any = jnp.float32
    on_patches: bool = False

    @nn.compact
    def __call__(self, x, readout_input: bool = False):
        spec = self.spec
        feature_major = getattr(_LAYOUT, "feature_major", False) and all(
            not (isinstance(layer, Affine) and layer.kernel_size) for layer in spec.layers)
        if feature_major:
            x = x.T
        for i, layer in enumerate(spec.layers):
            if isinstance(layer, Affine):
                if readout_input and layer.name == "readout":
                    return x.T if feature_major else x
                x = AffineLayer(layer.features, layer.kernel_size, spec.W_std, spec.b_std,
                                spec.parameterization, self.param_dtype, layer.role, spec.width_ratio,
                                spec.zero_readout and layer.role == "readout", feature_major,
                                self.on_patches and i == 0, name=layer.name)(x)
            elif isinstance(layer, Nonlinearity):
                x = ACTIVATIONS[layer.name].fn(x)
            elif layer.kind == "flatten":
                x = x.reshape(x.shape[0], -1)
            else:
                x = x.mean(axis=tuple(range(1, x.ndim - 1)))
        return x.T if feature_major else x


_LAYOUT = threading.local()


@contextlib.contextmanager
def training_layout():
    """Trace ``MLP`` networks with feature-major activations while this is active.

    A layout, not a different network: parameters, shapes and results are
    unchanged (up to float rounding). It pays where a network is
    differentiated. The gradient of ``x @ w`` with respect to ``x`` is
    ``delta @ w.T``, whose ``(n, width)`` result this jaxlib computes at a
    fraction of the speed of ``w @ delta`` (measured: 520 ms against 28 ms
    for ``(4, 10000) @ (10000, 10000).T``); feature-major, the backward pass
    is ``w @ delta``, and training steps at widths 1024 to 10000 take 1.5 to
    2.2 times less time. The forward pass alone, and the empirical NTK, are
    faster batch-major (a width-8192 NNGP 3.7x, its NTK 2.2x), which is why
    this is not the default: ``replication.train`` enters it around
    everything it compiles. It takes effect when a function is traced, so a
    function compiled outside keeps its layout inside.
    """
    previous = getattr(_LAYOUT, "feature_major", False)
    _LAYOUT.feature_major = True
    try:
        yield
    finally:
        _LAYOUT.feature_major = previous


@functools.lru_cache(maxsize=256)
def _network(spec, param_dtype, on_patches: bool = False) -> Network:
    return Network(spec, param_dtype, on_patches)


# ---------------------------------------------------------------------------
# Specs.

def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class _Spec:
    width: int
    depth: int = 2
    activation: str = "relu"
    W_std: float = 2**0.5
    b_std: float | None = 0.1
    parameterization: str = "ntk"
    out_dim: int = 1
    base_width: int | None = None   # muP only: the width at which it coincides with "standard"
    zero_readout: bool = False      # initialise the readout weights at zero (any parameterization)

    def __post_init__(self):
        _check_positive_int("width", self.width)
        _check_positive_int("out_dim", self.out_dim)
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 0:
            raise ValueError(f"depth must be a non-negative integer, got {self.depth!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; "
                             f"allowed: {', '.join(ACTIVATIONS)}")
        check_parameterization(self.parameterization)
        if not (math.isfinite(self.W_std) and self.W_std > 0):
            raise ValueError(f"W_std must be a positive finite number, got {self.W_std!r}")
        if self.b_std is not None and not (math.isfinite(self.b_std) and self.b_std >= 0):
            raise ValueError(f"b_std must be None or a finite number >= 0, got {self.b_std!r}")
        if self.parameterization == "mup":
            if self.base_width is None:
                raise ValueError("parameterization 'mup' needs base_width (the width at which it equals 'standard')")
            _check_positive_int("base_width", self.base_width)
        elif self.base_width is not None:
            raise ValueError(f"base_width applies to parameterization 'mup' only, not {self.parameterization!r}")

    @property
    def width_ratio(self) -> float:
        """``width / base_width`` under muP (1 at depth 0, where no fan grows); 1 otherwise."""
        if self.parameterization != "mup" or self.depth == 0:
            return 1.0
        return self.width / self.base_width

    @property
    def layers(self) -> tuple[Layer, ...]:
        raise NotImplementedError

    def replace(self, **changes) -> "_Spec":
        return dataclasses.replace(self, **changes)

    def flax(self, param_dtype: Any = jnp.float32) -> Network:
        """The ``flax.linen`` module: ``init(key, x)``, ``apply(params, x)``.

        Equal specs return the same (immutable) module, so ``module.apply`` is
        one function and what is compiled for it is reused.
        """
        return _network(self, jnp.dtype(param_dtype))

    def stax(self):
        """neural-tangents' ``(init_fn, apply_fn, kernel_fn)`` of the same network.

        Not for ``mup``: neural-tangents has no muP layers, and muP's training
        has no kernel limit. Its NNGP is ``standard``'s divided by
        ``width_ratio`` (``replication.parametrization``).
        """
        return self._stax_of(self.layers)

    def _stax_of(self, layers: tuple[Layer, ...]):
        if self.parameterization == "mup":
            raise ValueError("parameterization 'mup' has no neural-tangents closed form; "
                             "its NNGP is the 'standard' one divided by width / base_width")
        if self.zero_readout:
            raise ValueError("zero_readout has no neural-tangents closed form (its NNGP is the bias's alone)")
        return _stax().serial(*map(self._stax_layer, layers))

    def _stax_layer(self, layer: Layer):
        stax = _stax()
        if isinstance(layer, Affine) and layer.kernel_size:
            return stax.Conv(layer.features, layer.kernel_size, (1,) * len(layer.kernel_size),
                             "SAME", self.W_std, self.b_std, parameterization=self.parameterization)
        if isinstance(layer, Affine):
            return stax.Dense(layer.features, self.W_std, self.b_std,
                              parameterization=self.parameterization)
        if isinstance(layer, Nonlinearity):
            return ACTIVATIONS[layer.name].stax_layer()
        return stax.Flatten() if layer.kind == "flatten" else stax.GlobalAvgPool()

    def readout_scaling(self, fan_in: int):
        """``AffineScaling`` of the readout layer given its fan-in (init std 0 under ``zero_readout``)."""
        s = affine_scaling(self.parameterization, self.W_std, self.b_std, fan_in, "readout", self.width_ratio)
        return dataclasses.replace(s, weight_init_std=0.0) if self.zero_readout else s

    def optimizer(self, name: str, learning_rate, **kwargs):
        """optax ``sgd`` or ``adam`` with this parameterization's per-layer learning rates.

        The base optimizer runs with ``learning_rate`` (and ``kwargs``, e.g.
        ``momentum``); its update of each parameter is then scaled by the
        parameterization's factor for that layer and kind
        (``replication.parametrization.learning_rate_factors``), through
        ``optax.multi_transform`` over a label tree. Scaling the update after
        the base optimizer is the same as a per-layer learning rate, for SGD
        (with momentum) and for Adam. Under ``ntk`` and ``standard`` every
        factor is 1.
        """
        import optax

        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")
        base = {"sgd": optax.sgd, "adam": optax.adam}[name](learning_rate, **kwargs)
        factors = self.learning_rate_factors(name)
        labels = {c: f"x{c!r}" for f in factors.values() for c in f.values()}

        def label_tree(params):
            return {"params": {layer: {kind: labels[factors[layer][kind]] for kind in leaves}
                               for layer, leaves in params["params"].items()}}

        return optax.chain(base, optax.multi_transform({lab: optax.scale(c) for c, lab in labels.items()},
                                                       label_tree))

    def learning_rate_factors(self, optimizer: str = "sgd") -> dict:
        """``{layer name: {"kernel": c_W, "bias": c_b}}``: what ``optimizer()`` multiplies each update by."""
        return {layer.name: dict(zip(("kernel", "bias"), learning_rate_factors(
                    self.parameterization, layer.role, self.width_ratio, optimizer)))
                for layer in self.layers if isinstance(layer, Affine)}

    @property
    def unit_spec(self) -> "_Spec":
        """This architecture under the NTK parameterization, readout drawn: see ``init_from_unit``."""
        return self.replace(parameterization="ntk", base_width=None, zero_readout=False)

    def init_from_unit(self, unit) -> dict:
        """The parameters ``self.flax().init(key, x)`` returns, from the same key's unit draws.

        ``unit`` is ``self.unit_spec.flax().init(key, x)``, whose weights and
        biases are the key's standard normals themselves (the NTK
        parameterization initialises every leaf at variance 1). Every
        parameterization, activation and ``W_std`` of one architecture
        multiplies those normals by its own init standard deviation, so a
        sweep over them can draw the random numbers once; the result equals
        ``init`` bit for bit (a test checks it).
        """
        tree = {}
        for layer in self.layers:
            if isinstance(layer, Affine):
                leaves = unit["params"][layer.name]
                fan_in = math.prod(leaves["kernel"].shape[:-1])
                if layer.role == "readout":
                    s = self.readout_scaling(fan_in)
                else:
                    s = affine_scaling(self.parameterization, self.W_std, self.b_std, fan_in,
                                       layer.role, self.width_ratio)
                out = {"kernel": leaves["kernel"] * s.weight_init_std}
                if "bias" in leaves:
                    out["bias"] = leaves["bias"] * s.bias_init_std
                tree[layer.name] = out
        return {"params": tree}

    def init_in_one_draw(self, key: jax.Array, x: jax.Array, param_dtype: Any = jnp.float32) -> dict:
        """Parameters of ``self.flax(param_dtype)`` for inputs shaped like ``x``, from one RNG call.

        The same law as ``self.flax(param_dtype).init(key, x)``, not the same
        numbers: every standard normal the network needs is drawn at once, as
        one vector, then cut into the unit draws of ``unit_spec`` and scaled
        by ``init_from_unit``. Flax draws each parameter with its own call,
        and with XLA's CPU backend each call costs about 0.2 s of compilation
        in every program that initialises networks: a vmapped init of a
        depth-1 MLP (four parameters) compiles in 0.3-0.4 s this way against
        1.3-1.5 s. Use it where many differently shaped networks are
        initialised inside compiled programs (``kernels.over_initialisations``).
        """
        shapes = jax.eval_shape(self.unit_spec.flax(param_dtype).init, key, x)
        leaves, tree = jax.tree_util.tree_flatten(shapes)
        sizes = [math.prod(leaf.shape) for leaf in leaves]
        flat = jax.random.normal(key, (sum(sizes),), param_dtype)
        offsets = itertools.accumulate(sizes, initial=0)
        unit = [flat[start:start + size].reshape(leaf.shape)
                for start, size, leaf in zip(offsets, sizes, leaves)]
        return self.init_from_unit(jax.tree_util.tree_unflatten(tree, unit))

    # Parameters travel between the two worlds layer by layer: stax keeps a
    # list with ``(W, b)`` per affine layer (b shaped to broadcast against the
    # output, or None) and ``()`` per other layer; Flax a dict keyed by name.

    def params_to_stax(self, params) -> list:
        tree = params["params"]
        out = []
        for layer in self.layers:
            if isinstance(layer, Affine):
                p = tree[layer.name]
                b = p.get("bias")
                if b is not None:
                    b = b.reshape((1,) * (len(layer.kernel_size) + 1) + (-1,))
                out.append((p["kernel"], b))
            else:
                out.append(())
        return out

    def params_from_stax(self, stax_params) -> dict:
        tree = {}
        for layer, p in zip(self.layers, stax_params, strict=True):
            if isinstance(layer, Affine):
                W, b = p
                tree[layer.name] = {"kernel": W} if b is None else {"kernel": W, "bias": b.reshape(-1)}
        return {"params": tree}


@dataclass(frozen=True)
class MLP(_Spec):
    """Fully connected network: ``depth`` hidden layers of ``width`` units."""

    @property
    def layers(self) -> tuple[Layer, ...]:
        hidden = []
        for i in range(self.depth):
            hidden += [Affine(f"dense_{i}", self.width, role="input" if i == 0 else "hidden"),
                       Nonlinearity(self.activation)]
        return (*hidden, Affine("readout", self.out_dim, role="readout"))


@dataclass(frozen=True)
class CNN(_Spec):
    """Convolutional network on ``(n, H, W, C)`` images.

    ``depth`` convolutions with ``width`` channels, square ``kernel_size``
    filters, stride 1 and SAME padding, then ``readout="flatten"`` (a dense
    readout of all positions) or ``"gap"`` (global average pooling first).
    """

    kernel_size: int = 3
    readout: str = "flatten"

    def __post_init__(self):
        super().__post_init__()
        _check_positive_int("kernel_size", self.kernel_size)
        if self.readout not in READOUTS:
            raise ValueError(f"unknown readout {self.readout!r}; allowed: {', '.join(READOUTS)}")

    @property
    def layers(self) -> tuple[Layer, ...]:
        k = (self.kernel_size, self.kernel_size)
        hidden = []
        for i in range(self.depth):
            hidden += [Affine(f"conv_{i}", self.width, k, role="input" if i == 0 else "hidden"),
                       Nonlinearity(self.activation)]
        return (*hidden, Pool(self.readout), Affine("readout", self.out_dim, role="readout"))

    # A k x k SAME convolution of x is a 1 x 1 convolution of x's k x k
    # patches, with the same fan-in: the same network and the same kernels.
    # Two costs fall. neural-tangents' closed form under global average
    # pooling tracks all (HW)^2 pairs of positions, and convolving that
    # covariance is its expensive step; on patches the first layer's is a
    # 1 x 1 one, about k^4 times cheaper. And on XLA's CPU backend a
    # convolution with one input channel and its gradients run far below the
    # machine's matrix-product rate: measured on 200 digits, 300 steps of
    # ``replication.train.fit`` took 3.6 to 5.5 times less time on patches at
    # 64 and 128 channels, flatten and pooling readouts.

    def patches(self, x) -> jax.Array:
        """Each pixel's ``k x k`` neighbourhood (zero padded) as channels: ``(n, H, W, C k k)``.

        The entries of a patch are ordered ``(C, k, k)``.
        """
        self._check_patches()
        k = self.kernel_size
        return lax.conv_general_dilated_patches(jnp.asarray(x), (k, k), (1, 1), "SAME",
                                                dimension_numbers=("NHWC", "OIHW", "NHWC"))

    def stax_on_patches(self):
        """neural-tangents' triple of this network for inputs given as ``self.patches(x)``.

        The first convolution becomes a ``1 x 1`` one on ``C k k`` channels;
        the kernels are ``self.stax()``'s (a test checks it).
        """
        self._check_patches()
        first, *rest = self.layers
        return self._stax_of((dataclasses.replace(first, kernel_size=(1, 1)), *rest))

    def apply_on_patches(self, params, patches) -> jax.Array:
        """``self.flax().apply(params, x)`` from ``patches = self.patches(x)``, for the same ``params``.

        The first convolution, ``m_W * conv(x, w) + m_b * beta`` with ``w`` of
        shape ``(k, k, C, width)``, is the matrix product of each pixel's
        patch with ``w`` laid out as ``(C k k, width)``: the same sums with the
        same fan-in, so the same function of the same parameters, initialised
        by ``self.flax().init`` (a test checks outputs and gradients). Equal
        specs give equal bound methods, so ``fit`` compiles once per width.
        """
        return _network(self, jnp.dtype(jnp.float32), True).apply(params, patches)

    def _check_patches(self):
        if self.depth < 1:
            raise ValueError("a CNN on patches needs a first convolution (depth >= 1)")
