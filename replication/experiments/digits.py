"""digits: the theory on real data, scikit-learn's 8x8 handwritten digits.

1,797 images of 8x8 pixels, 10 classes, split once into training and test
images (stratified by class, fixed seed); targets are centred one-hot vectors
(one-hot minus 1/10, Lee et al. 2018) and inputs are standardised with the
training images' statistics. Theory (Lee et al. 2018; Jacot et al. 2018; Lee
et al. 2019): an infinitely wide network at initialisation is a Gaussian
process with the NNGP kernel, and one trained by gradient descent on MSE is
kernel regression with the NTK, both in closed form (neural-tangents). A
finite network trained by full-batch gradient descent follows the closed-form
NTK dynamics started from its own initial outputs, with a gap in its outputs
of order `width^(-1/2)`, so its test accuracy approaches the one the NTK
predicts for it.

Measured here: closed-form NNGP and NTK regression (the t -> infinity limit
of gradient descent on MSE) for fully connected ReLU networks of depth 1 to 3
and a convolutional network (readout through flatten and through global
average pooling), next to two scikit-learn baselines; Flax networks of the
same architectures trained with optax at a ladder of widths (channels for
the CNN), several seeds, against the closed-form NTK at the same training
time; and a table in the style of Lee et al. 2018, Table 1.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from jax.experimental import enable_x64

from replication.arch import ACTIVATIONS, CNN, MLP, Affine, Nonlinearity
from replication.data import Digits, digits
from replication.parametrization import affine_scaling
from replication.report import Claim, Figure, Report, Section, fmt, loglog_figure, markdown_table
from replication.stats import fit_power_law
from replication.sweep import network_key, progress
from replication.train import fit, linearized, mse, mse_loss

SECTION_DATA = "Data"
SECTION_KERNELS = "Closed-form NNGP and NTK regression"
SECTION_TRAINED = "Trained networks against the NTK at the same training time"
SECTION_CENTRED = "Centred networks against the NTK mean predictor"
SECTION_TABLE = "Best finite network, NNGP and NTK (Lee et al. 2018, Table 1)"
ARCHITECTURES = ("mlp-1", "mlp-2", "mlp-3", "cnn-flatten", "cnn-gap")


@dataclass(frozen=True)
class Config:
    seed: int = 0                      # the split, the subsets, the networks' keys
    test_size: int = 450               # images held out of the 1,797 (25%)
    n_train: int | None = 200          # a stratified subset of the training split; None: all of it
    n_test: int | None = 200           # a stratified subset of the test split; None: all of it
    activation: str = "relu"
    W_std: float = 2**0.5
    b_std: float = 0.1
    cnn_depth: int = 1                 # convolutions of the CNN, 3x3, stride 1, SAME padding
    cnn_kernel_size: int = 3
    architectures: tuple[str, ...] = ARCHITECTURES
    kernel_batch: int = 50             # nt.batch's batch size for the closed-form kernels
    diag_reg: float = 0.0              # kernel regression's regulariser, relative to the mean trace
    # Trained networks: full-batch gradient descent (optax SGD) on mse.
    trained: tuple[str, ...] = ARCHITECTURES
    mlp_widths: tuple[int, ...] = (16, 64, 256, 1024, 2048)       # depth 1
    # Depth 2 and 3 cost width^2 per step: a shorter ladder on the quick preset.
    deep_mlp_widths: tuple[int, ...] = (8, 32, 128, 512)
    cnn_widths: tuple[int, ...] = (2, 8, 32, 128)   # channels
    seeds: int = 3
    # Architectures whose networks' linearisations are trained beside them, to split the gap
    # (as costly again as the networks: the quick preset splits the depth-1 MLP's).
    linearise: tuple[str, ...] = ("mlp-1",)
    # Centred networks, f(x; theta) - f(x; theta_0): the same networks from the same inits, trained
    # from zero outputs at every width of the ladder, with the first `centred_seeds` seeds (None: all).
    # Their cost is the networks' again, mostly at the widest width: two seeds on the quick preset.
    centred_seeds: int | None = 2
    lr_fraction: float = 0.5           # step = lr_fraction * 2 n k / lambda_max of the closed-form NTK
    steps: int = 300
    expected_exponent: float = -0.5
    # The gap is the kernel's O(width^-1/2) fluctuation carried by the dynamics;
    # corrections of relative order width^-1/2 bend the narrow end of the
    # ladder, which a 0.1 band absorbs (as in the nngp, ntk and regression reports).
    exponent_tolerance: float = 0.1
    # The test set resolves an accuracy to its binomial standard error
    # sqrt(p (1 - p) / n_test); gaps within this many of them are not resolved
    # (for the trained networks against their own NTK predictions, and for the
    # centred networks against the NTK mean predictor).
    accuracy_standard_errors: float = 2.0


PRESETS = {
    "quick": Config(),
    "full": Config(n_train=None, n_test=None, mlp_widths=(16, 64, 256, 1024, 4096, 16384),
                   deep_mlp_widths=(16, 64, 256, 1024, 4096, 16384), cnn_widths=(2, 8, 32, 128, 512, 1024),
                   seeds=8, steps=1000, linearise=ARCHITECTURES, centred_seeds=None),
}
OPTIONS = {"widths": "mlp_widths", "seeds": "seeds"}


# ---------------------------------------------------------------------------
# Architectures, and their closed forms computed in batches.

@lru_cache(maxsize=None)
def centred(apply_fn):
    """The network minus its initial function: ``f_c(params, params0, x) = f(params, x) - f(params0, x)``.

    ``params0`` (the initialisation) is held fixed, so ``f_c`` is zero at
    ``params = params0`` and its Jacobian in ``params`` is ``f``'s at every
    point: the same empirical NTK, at initialisation and along training.
    Trained by gradient descent on mse it therefore follows the NTK dynamics
    started from zero outputs, whose infinite-width limit is the closed-form
    mean predictor (Lee et al. 2019; the centred model of Chizat et al.
    2019). A zero-initialised readout also starts at zero, but its NTK at
    initialisation loses every hidden layer's term (their gradients pass
    through the zero readout), so it is not the same kernel.

    On the training inputs ``f(params0, x)`` is a constant, so
    ``mse(f_c(params, params0, x), y) = mse(f(params, x), y + f(params0, x))``:
    the centred network is ``f`` trained on shifted targets, which a sweep
    uses to train it with ``f``'s compiled program at no extra cost per step
    (a test checks the two agree). One function object per ``apply_fn``.
    """
    def f_c(params, params0, x):
        return apply_fn(params, x) - apply_fn(params0, x)

    return f_c


def spec_of(name: str, width: int, config: Config) -> MLP | CNN:
    """``mlp-<depth>`` or ``cnn-<readout>`` at ``width`` (channels for the CNN), 10 outputs."""
    common = dict(activation=config.activation, W_std=config.W_std, b_std=config.b_std, out_dim=10)
    if name.startswith("mlp-"):
        return MLP(width, depth=int(name[4:]), **common)
    return CNN(width, depth=config.cnn_depth, kernel_size=config.cnn_kernel_size, readout=name[4:],
               **common)


def widths_of(name: str, config: Config) -> tuple[int, ...]:
    """The ladder an architecture is trained at: widths for an MLP, channels for the CNN."""
    if name.startswith("cnn"):
        return config.cnn_widths
    return config.mlp_widths if name == "mlp-1" else config.deep_mlp_widths


def inputs_of(spec, x: np.ndarray) -> np.ndarray:
    """Images ``(n, 8, 8, 1)`` for a CNN, vectors ``(n, 64)`` for an MLP."""
    return x if isinstance(spec, CNN) else Digits.flat(x)


def patches(spec: CNN, x) -> jax.Array:
    """Each pixel's ``k x k`` neighbourhood (zero padded) as channels: ``(n, H, W, k k C)``."""
    k = spec.kernel_size
    return jax.lax.conv_general_dilated_patches(jnp.asarray(x), (k, k), (1, 1), "SAME",
                                                dimension_numbers=("NHWC", "OIHW", "NHWC"))


def stax_on_patches(spec: CNN):
    """neural-tangents' triple of ``spec`` for inputs given as ``patches(spec, x)``.

    A ``k x k`` SAME convolution of ``x`` is a ``1 x 1`` convolution of its
    patches with the same fan-in, so the kernels are the same (a test checks
    it against ``spec.stax()``). For global average pooling, whose kernel
    tracks all ``(HW)^2`` pairs of positions, neural-tangents' convolution of
    that covariance is the expensive step; on patches the first layer's is a
    ``1 x 1`` one, about ``k^4`` times cheaper.
    """
    from neural_tangents import stax

    first, *rest = spec.layers
    conv = dict(W_std=spec.W_std, b_std=spec.b_std, parameterization=spec.parameterization)
    layers = [stax.Conv(first.features, (1, 1), (1, 1), "SAME", **conv)]
    for layer in rest:
        if isinstance(layer, Affine) and layer.kernel_size:
            layers.append(stax.Conv(layer.features, layer.kernel_size, (1,) * len(layer.kernel_size), "SAME", **conv))
        elif isinstance(layer, Affine):
            layers.append(stax.Dense(layer.features, **conv))
        elif isinstance(layer, Nonlinearity):
            layers.append(ACTIVATIONS[layer.name].stax_layer())
        else:
            layers.append(stax.Flatten() if layer.kind == "flatten" else stax.GlobalAvgPool())
    return stax.serial(*layers)


@lru_cache(maxsize=None)
def apply_on_patches(spec: CNN):
    """``f(params, patches(spec, x)) = spec.flax().apply(params, x)``: the same network and parameters.

    The first convolution, ``m_W * conv(x, w) + m_b * beta`` with ``w`` of
    shape ``(k, k, C, width)``, is the matrix product of each pixel's patch
    (entries ordered ``(C, k, k)`` by ``patches``) with ``w`` laid out as
    ``(C k k, width)``: the same sums with the same fan-in, so the same
    function of the same parameters, initialised by ``spec.flax().init``
    (a test checks outputs and gradients). On XLA's CPU backend a
    convolution with one input channel and its gradients run far below the
    machine's matrix-product rate: measured on 200 digits, 300 steps of
    ``fit`` took 3.6 to 5.5 times less time this way at 64 and 128 channels,
    flatten and pooling readouts. Later layers are as in
    ``replication.arch.Network``. One function object per spec, so ``fit``
    compiles once per width.
    """
    def apply(params, x):
        tree = params["params"]
        first = True
        for layer in spec.layers:
            if isinstance(layer, Nonlinearity):
                x = ACTIVATIONS[layer.name].fn(x)
                continue
            if not isinstance(layer, Affine):
                x = x.reshape(x.shape[0], -1) if layer.kind == "flatten" else x.mean(axis=(1, 2))
                continue
            p = tree[layer.name]
            w = p["kernel"]
            fan_in = w.size // w.shape[-1]
            s = affine_scaling(spec.parameterization, spec.W_std, spec.b_std, fan_in, layer.role,
                               spec.width_ratio)
            if first:
                x = x @ jnp.moveaxis(w, -2, 0).reshape(fan_in, w.shape[-1])
                first = False
            elif layer.kernel_size:
                x = jax.lax.conv_general_dilated(x, w, (1,) * len(layer.kernel_size), "SAME",
                                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
            else:
                x = x @ w
            x = s.weight_multiplier * x
            if "bias" in p:
                x = x + s.bias_multiplier * p["bias"]
        return x

    return apply


def _padded(x, multiple: int):
    n = x.shape[0]
    extra = -n % multiple
    return (x if not extra else jnp.concatenate([x, jnp.broadcast_to(x[:1], (extra, *x.shape[1:]))])), n


def closed_form_kernels(spec, x_train, x_test, batch_size: int) -> dict:
    """Closed-form NNGP and NTK in float64: ``{"nngp"|"ntk": (train-train (n, n), test-train (m, n))}``.

    Computed by ``nt.batch`` in ``batch_size x batch_size`` blocks (inputs
    padded to a multiple of it), so memory holds one block of the kernel's
    intermediate covariances; a CNN goes through ``stax_on_patches``.
    """
    import neural_tangents as nt

    with enable_x64():
        if isinstance(spec, CNN):
            kernel_fn = stax_on_patches(spec)[2]
            xtr, xte = (patches(spec, jnp.asarray(x, jnp.float64)) for x in (x_train, x_test))
        else:
            kernel_fn = spec.stax()[2]
            xtr, xte = (jnp.asarray(x, jnp.float64) for x in (x_train, x_test))
        batched = nt.batch(kernel_fn, batch_size=batch_size, store_on_device=False)
        (xtr, n), (xte, m) = _padded(xtr, batch_size), _padded(xte, batch_size)
        k_tt = batched(xtr, None, ("nngp", "ntk"))
        k_te = batched(xte, xtr, ("nngp", "ntk"))
        return {g: (np.asarray(getattr(k_tt, g))[:n, :n], np.asarray(getattr(k_te, g))[:m, :n])
                for g in ("nngp", "ntk")}


def regression(k_train, k_test_train, y_train, t=None, learning_rate=1.0, diag_reg=0.0,
               f0_train=None, f0_test=None, trace_axes=(-1,)) -> np.ndarray:
    """neural-tangents' ``gradient_descent_mse`` test outputs at step ``t`` (``None``: t -> infinity).

    The mse convention of ``replication.train`` (normalised by ``y.size``), in
    float64; started from ``f0`` (zero: the mean predictor). ``diag_reg`` is
    relative to the mean of the kernel's diagonal. Kernels are ``(n1, n2)``,
    one per output as the closed forms are; ``trace_axes=()`` takes a finite
    network's full ``(n1, n2, k, k)`` kernel, whose output blocks are coupled.
    """
    predict = regression_predictor(k_train, y_train, learning_rate, diag_reg, trace_axes)
    return predict(k_test_train, t, f0_train, f0_test)


def regression_predictor(k_train, y_train, learning_rate=1.0, diag_reg=0.0, trace_axes=(-1,)):
    """``predict(k_test_train, t=None, f0_train=None, f0_test=None)``: ``regression`` for one training kernel.

    neural-tangents decomposes the training kernel (float64) on the first
    call and keeps it, so the networks of a sweep, each from its own initial
    outputs, share one decomposition (about 0.3 s each on 200 images).
    """
    import neural_tangents as nt

    with enable_x64():
        k, y = (jnp.asarray(a, jnp.float64) for a in (k_train, y_train))
        gd = nt.predict.gradient_descent_mse(k, y, learning_rate=learning_rate, diag_reg=diag_reg,
                                             diag_reg_absolute_scale=False, trace_axes=trace_axes)

    def predict(k_test_train, t=None, f0_train=None, f0_test=None) -> np.ndarray:
        with enable_x64():
            kt = jnp.asarray(k_test_train, jnp.float64)
            f0_train = 0.0 if f0_train is None else jnp.asarray(f0_train, jnp.float64)
            f0_test = (jnp.zeros((kt.shape[0], y.shape[1])) if f0_test is None
                       else jnp.asarray(f0_test, jnp.float64))
            return np.asarray(gd(t, f0_train, f0_test, kt)[1])

    return predict


def accuracy(outputs, labels) -> float:
    return float(np.mean(np.asarray(outputs).argmax(-1) == np.asarray(labels)))


def test_mse(outputs, targets) -> float:
    return float(np.mean((np.asarray(outputs, np.float64) - np.asarray(targets, np.float64)) ** 2))


# ---------------------------------------------------------------------------
# Baselines, for context.

def baselines(data: Digits, seed: int) -> dict:
    """RBF-kernel SVM and logistic regression on the standardised pixels; ``C`` by 5-fold CV on train."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    xtr, xte = Digits.flat(data.x_train), Digits.flat(data.x_test)
    models = {
        "RBF-kernel SVM": GridSearchCV(SVC(kernel="rbf", gamma="scale"), {"C": [1, 3, 10, 30, 100]}, cv=5),
        "logistic regression": GridSearchCV(LogisticRegression(max_iter=2000, random_state=seed),
                                            {"C": [0.01, 0.1, 1, 10]}, cv=5),
    }
    out = {}
    for name, model in models.items():
        model.fit(xtr, data.labels_train)
        out[name] = {"accuracy": float(model.score(xte, data.labels_test)), "C": model.best_params_["C"]}
    return out


# ---------------------------------------------------------------------------
# Trained networks.

def train_networks(spec, widths, seeds: int, seed: int, data: Digits, kernels: dict, lr: float,
                   steps: int, linearise: bool = False, centre: tuple[int, ...] = (),
                   centred_seeds: int | None = None) -> dict:
    """For each width, ``seeds`` networks trained by ``fit``; each against the NTK from its own init.

    Returns arrays ``(n_widths, seeds)``: test accuracy of the network and of
    its closed-form NTK prediction at the same step, the RMS difference of
    their test outputs, the fraction of test images given the same class,
    and whether the run diverged. ``linearise=True`` also trains each
    network's linearisation around its init (Lee et al. 2019) with the same
    optimizer and splits the RMS gap: network vs its linearisation
    (``rmse_nonlinear``), linearisation vs the closed form (``rmse_linear``).
    At the widths in ``centre`` each of the first ``centred_seeds`` networks
    (default: all) is also trained centred,
    ``f(x; theta) - f(x; theta_0)`` (``replication.train.centred``), from the
    same init with the same optimizer and steps: its test accuracy
    (``acc_centred``), the RMS difference of its test outputs from the
    closed-form NTK mean predictor at the same step (``rmse_centred``; the
    prediction from zero outputs, the same for every seed), the fraction of
    test images given the mean predictor's class (``agree_centred``) and
    divergence; NaN at the other widths. ``mean_prediction`` holds that
    predictor's test outputs ``(m, k)``.
    A CNN is trained on its inputs' patches (``apply_on_patches``).
    """
    images = [jnp.asarray(inputs_of(spec, x)) for x in (data.x_train, data.x_test)]
    xtr, xte = (patches(spec, x) for x in images) if isinstance(spec, CNN) else images
    ytr = jnp.asarray(data.y_train)
    k_tt, k_te = kernels["ntk"]
    keys = ("acc_net", "acc_ntk", "rmse", "agree", "diverged", "loss_ratio",
            *(("rmse_nonlinear", "rmse_linear", "diverged_linear") if linearise else ()),
            *(("acc_centred", "rmse_centred", "agree_centred", "diverged_centred") if centre else ()))
    m = {k: np.full((len(widths), seeds), np.nan) for k in keys}
    optimizer = optax.sgd(lr)
    predict = regression_predictor(k_tt, data.y_train, lr)
    mean_prediction = predict(k_te, steps)
    with progress(len(widths), f"digits {spec_name(spec)}") as bar:
        for i, w in enumerate(widths):
            spec_w = spec.replace(width=w)
            module = spec_w.flax()
            apply = apply_on_patches(spec_w) if isinstance(spec, CNN) else module.apply
            loss = mse_loss(apply)
            forward = _jitted(apply)
            for s in range(seeds):
                # One network at a time, with one program per width: vmapped over seeds,
                # XLA's CPU convolutions become grouped ones, many times slower.
                # Eager init: its primitives compile once per shape, where a jitted init costs
                # about a second of compilation per width and architecture.
                params = module.init(network_key(seed, w, s), images[0][:1])
                f0_tr, f0_te = forward(params, xtr), forward(params, xte)
                run = fit(loss, params, optimizer, steps, args=(xtr, ytr))
                own = predict(k_te, steps, f0_tr, f0_te)
                if w in centre and s < (seeds if centred_seeds is None else centred_seeds):
                    # f - f0 on mse is f on targets y + f0 (train.centred): the same loss and
                    # optimizer objects, so the same compiled program as the network's.
                    run_c = fit(loss, params, optimizer, steps, args=(xtr, ytr + f0_tr))
                    m["diverged_centred"][i, s] = bool(run_c.diverged)
                    if not run_c.diverged:
                        f_c_te = np.asarray(forward(run_c.params, xte) - f0_te, np.float64)
                        m["acc_centred"][i, s] = accuracy(f_c_te, data.labels_test)
                        m["rmse_centred"][i, s] = _rms(f_c_te - mean_prediction)
                        m["agree_centred"][i, s] = float(np.mean(f_c_te.argmax(-1) == mean_prediction.argmax(-1)))
                m["diverged"][i, s] = bool(run.diverged)
                m["loss_ratio"][i, s] = float(run.losses[-1] / run.losses[0])
                m["acc_ntk"][i, s] = accuracy(own, data.labels_test)
                if linearise:
                    f_lin = linearized(apply)
                    lin = fit(_linear_loss(f_lin), params, optimizer, steps, args=(params, xtr, ytr))
                    # The linearisation's loss is a convex quadratic: below its stability step
                    # gradient descent never raises it, so a raised loss is an unstable mode
                    # growing geometrically (not yet overflowed), recorded as diverged.
                    lin_diverged = bool(lin.diverged) or float(lin.losses[-1]) > float(lin.losses[0])
                    m["diverged_linear"][i, s] = lin_diverged
                    f_lin_te = np.asarray(_jitted(f_lin)(lin.params, params, xte), np.float64)
                    if not lin_diverged:
                        m["rmse_linear"][i, s] = _rms(f_lin_te - own)
                if run.diverged:
                    continue  # recorded as diverged; its outputs are not measurements
                f_te = np.asarray(forward(run.params, xte), np.float64)
                m["acc_net"][i, s] = accuracy(f_te, data.labels_test)
                m["rmse"][i, s] = _rms(f_te - own)
                m["agree"][i, s] = float(np.mean(f_te.argmax(-1) == own.argmax(-1)))
                if linearise and not lin_diverged:
                    m["rmse_nonlinear"][i, s] = _rms(f_te - f_lin_te)
            bar.update()
    if centre:
        m["mean_prediction"] = mean_prediction
    return m


@lru_cache(maxsize=None)
def _jitted(fn):
    return jax.jit(fn)


@lru_cache(maxsize=None)
def _linear_loss(f_lin):
    """``mse`` of the linearised network ``f_lin(params, params0, x)``: one object per ``f_lin``."""
    return lambda p, p0, x, y: mse(f_lin(p, p0, x), y)


def _rms(a) -> float:
    return float(np.sqrt(np.mean(np.square(a))))


def spec_name(spec) -> str:
    return f"mlp-{spec.depth}" if isinstance(spec, MLP) else f"cnn-{spec.readout}"


# ---------------------------------------------------------------------------

def run(config: Config) -> Report:
    for name in (*config.architectures, *config.trained, *config.linearise):
        if name not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {name!r}; allowed: {', '.join(ARCHITECTURES)}")
        if name not in config.architectures:
            raise ValueError(f"trained architecture {name!r} needs its closed form: add it to architectures")
        if name in config.linearise and name not in config.trained:
            raise ValueError(f"architecture {name!r} is linearised but not trained: add it to trained")
    if config.centred_seeds is not None and not 0 <= config.centred_seeds <= config.seeds:
        raise ValueError(f"centred_seeds must be None or between 0 and seeds={config.seeds}, "
                         f"got {config.centred_seeds}")
    centred_seeds = config.seeds if config.centred_seeds is None else config.centred_seeds
    data = digits(config.test_size, config.seed, config.n_train, config.n_test)
    n, k = data.y_train.shape
    n_test = data.y_test.shape[0]

    # Closed forms: NNGP and NTK regression to t -> infinity, for each architecture.
    closed, kernels = {}, {}
    with progress(len(config.architectures), "digits kernels") as bar:
        for name in config.architectures:
            spec = spec_of(name, 1, config)
            start = time.perf_counter()
            kernels[name] = closed_form_kernels(spec, inputs_of(spec, data.x_train),
                                                inputs_of(spec, data.x_test), config.kernel_batch)
            seconds = time.perf_counter() - start
            closed[name] = {"kernel_seconds": seconds}
            for g in ("nngp", "ntk"):
                k_tt, k_te = kernels[name][g]
                lam = np.linalg.eigvalsh(k_tt)
                pred = regression(k_tt, k_te, data.y_train, diag_reg=config.diag_reg)
                closed[name][g] = {"accuracy": accuracy(pred, data.labels_test),
                                   "mse": test_mse(pred, data.y_test),
                                   "lambda_max": float(lam[-1]), "condition": float(lam[-1] / lam[0])}
            bar.update()
    base = baselines(data, config.seed)

    # Trained networks against the closed-form NTK from their own init, at the same step.
    trained, lrs, fits, claims = {}, {}, {}, []
    for name in config.trained:
        widths = widths_of(name, config)
        lam_max = closed[name]["ntk"]["lambda_max"]
        # Gradient descent on mse (normalised by n k) is stable for steps below 2 n k / lambda_max.
        lrs[name] = config.lr_fraction * 2 * n * k / lam_max
        start = time.perf_counter()
        m = train_networks(spec_of(name, widths[0], config), widths, config.seeds, config.seed, data,
                           kernels[name], lrs[name], config.steps, linearise=name in config.linearise,
                           centre=tuple(widths) if centred_seeds else (), centred_seeds=centred_seeds)
        mean_prediction = m.pop("mean_prediction", None)
        trained[name] = {"width": list(widths), **m, "seconds": time.perf_counter() - start}
        # Gradient descent against the gradient flow the closed form solves: per mode of the
        # training kernel |(1 - a)^t - exp(-a t)|, a = eta lambda / (n k), times the residual.
        a = lrs[name] * np.linalg.eigvalsh(kernels[name]["ntk"][0]) / (n * k)
        trained[name]["step_vs_flow"] = float(np.max(np.abs((1 - a) ** config.steps - np.exp(-a * config.steps))))
        ok = np.all(np.isfinite(m["rmse"]) & (m["rmse"] > 0), axis=1)
        fits[name] = fit_power_law(np.asarray(widths)[ok], m["rmse"][ok]) if ok.sum() >= 2 else None
        for part in ("rmse_nonlinear", "rmse_linear"):
            if part in m:
                ok_part = np.all(np.isfinite(m[part]) & (m[part] > 0), axis=1)
                trained[name][f"fit_{part}"] = (fit_power_law(np.asarray(widths)[ok_part], m[part][ok_part])
                                                if ok_part.sum() >= 2 else None)
        f = fits[name]
        claims.append(Claim(
            id=f"digits_gap_rate_{name}", section=SECTION_TRAINED,
            statement=f"{name}: trained network's test outputs -> closed-form NTK from its own init, same step",
            prediction="RMS gap ~ width^(-1/2)", expected=config.expected_exponent,
            measured=None if f is None else f.exponent, ci=None if f is None else f.ci,
            tolerance=config.exponent_tolerance))
        acc_ntk = float(np.nanmean(m["acc_ntk"][-1]))
        diffs = m["acc_net"][-1] - m["acc_ntk"][-1]   # paired: each network against its own prediction
        gap = float(np.mean(diffs)) if ok[-1] else None
        half = (_t95(len(diffs)) * float(np.std(diffs, ddof=1)) / np.sqrt(len(diffs))
                if gap is not None and len(diffs) > 1 else None)
        claims.append(Claim(
            id=f"digits_accuracy_{name}", section=SECTION_TRAINED,
            statement=f"{name}: widest networks' test accuracy -> their NTK predictions' (width {widths[-1]})",
            prediction="accuracy gap -> 0", expected=0.0, measured=gap,
            ci=None if half is None else (gap - half, gap + half),
            tolerance=float(config.accuracy_standard_errors * np.sqrt(acc_ntk * (1 - acc_ntk) / n_test))))
        if mean_prediction is None:
            continue
        # Centred networks from zero outputs -> the closed-form NTK mean predictor at the same step.
        acc_mean = accuracy(mean_prediction, data.labels_test)
        trained[name]["acc_mean_step"] = acc_mean
        trained[name]["centred_seeds"] = centred_seeds
        acc_c = m["acc_centred"][-1, :centred_seeds]
        ok_c = bool(np.all(np.isfinite(acc_c)))
        gap_c = float(np.mean(acc_c) - acc_mean) if ok_c else None
        half_c = (_t95(len(acc_c)) * float(np.std(acc_c, ddof=1)) / np.sqrt(len(acc_c))
                  if ok_c and len(acc_c) > 1 else None)
        claims.append(Claim(
            id=f"digits_centred_accuracy_{name}", section=SECTION_CENTRED,
            statement=(f"{name}: widest centred networks' test accuracy -> the closed-form NTK mean "
                       f"predictor's at the same step (width {widths[-1]})"),
            prediction="accuracy gap -> 0", expected=0.0, measured=gap_c,
            ci=None if half_c is None else (gap_c - half_c, gap_c + half_c),
            tolerance=float(config.accuracy_standard_errors * np.sqrt(acc_mean * (1 - acc_mean) / n_test))))

    sections = [data_section(config, data), kernel_section(config, closed, base, n)]
    if config.trained:
        sections.append(trained_section(config, trained, fits, lrs, claims, n, k))
    if any("acc_centred" in m for m in trained.values()):
        sections.append(centred_section(config, closed, trained, n_test))
    sections.append(table_section(config, closed, trained, base))
    series = {"data": {"index_train": data.index_train, "index_test": data.index_test,
                       "pixel_mean": data.pixel_mean, "pixel_std": data.pixel_std},
              "closed_form": closed, "baselines": base,
              "trained": {name: {**v, "learning_rate": lrs[name], "steps": config.steps,
                                 "fit_rmse": fits[name]} for name, v in trained.items()}}
    return Report(experiment="digits", title="The theory on real data: 8x8 handwritten digits",
                  summary=__doc__.split("\n\n", 1)[1], claims=claims, sections=sections, series=series,
                  precision="float32 networks; closed-form kernels and kernel regression in float64")


def _t95(n: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1))


def data_section(config: Config, data: Digits) -> Section:
    counts = [[c, int(np.sum(data.labels_train == c)), int(np.sum(data.labels_test == c))] for c in range(10)]
    body = f"""
scikit-learn's `load_digits` (1,797 images, 8x8 pixels with values 0 to 16, 10 classes; shipped
with the package). Split once, stratified by class, with seed {config.seed}: {config.test_size} images
held out as the test split, the other {1797 - config.test_size} the training split
(`sklearn.model_selection.train_test_split`); this run uses
{"all of the training split" if config.n_train is None else f"a stratified subset of {config.n_train}"}
and {"all of the test split" if config.n_test is None else f"a stratified subset of {config.n_test}"}
(same seed): **{data.y_train.shape[0]} training and {data.y_test.shape[0]} test images**, none
shared. Inputs: pixels minus {data.pixel_mean:.4f}, divided by {data.pixel_std:.4f} (one mean and one
standard deviation over every pixel of the training images; per-pixel statistics would divide the
nearly always blank border pixels by a near-zero deviation). Targets: one-hot minus 1/10, so each
row sums to zero (Lee et al. 2018); a prediction's class is its largest output. The images' indices
in `load_digits()` are in the JSON sidecar.

{markdown_table(["class", "training images", "test images"], counts)}
"""
    return Section(SECTION_DATA, body)


def kernel_section(config: Config, closed: dict, base: dict, n: int) -> Section:
    baseline_text = ", ".join(f"{k} {v['accuracy']:.4f} (C = {v['C']})" for k, v in base.items())
    rows = [[name, closed[name]["nngp"]["accuracy"], closed[name]["nngp"]["mse"],
             closed[name]["ntk"]["accuracy"], closed[name]["ntk"]["mse"],
             f"{closed[name]['nngp']['condition']:.3g}", f"{closed[name]['ntk']['condition']:.3g}",
             f"{closed[name]['kernel_seconds']:.1f}"] for name in config.architectures]
    body = f"""
ReLU networks in NTK parameterization, W_std = {fmt(config.W_std)}, b_std = {fmt(config.b_std)}, 10
outputs: `mlp-d` has d hidden dense layers; `cnn-flatten` and `cnn-gap` have {config.cnn_depth}
convolution(s) of {config.cnn_kernel_size}x{config.cnn_kernel_size} filters, stride 1, SAME padding,
then a dense readout of all positions (flatten) or of their average (global average pooling).
NNGP regression is the GP posterior mean, K_test,train K_train^-1 y; NTK regression is the t ->
infinity limit of gradient descent on mse, the same formula with the NTK (neural-tangents'
`gradient_descent_mse` with t = None, from zero initial outputs), regulariser
{fmt(config.diag_reg)} times the mean diagonal{" (none)" if config.diag_reg == 0 else ""}. Kernels
in float64 through `nt.batch` in blocks of {config.kernel_batch} x {config.kernel_batch} inputs; a CNN's
first convolution is computed as a 1x1 convolution of 3x3 patches (the same kernel, checked by a
test), which cuts global average pooling's (HW)^2 = 4096 covariances per pair of images to one
multiply each in that layer. Condition numbers are those of the training kernel on {n} images.

{markdown_table(["architecture", "NNGP accuracy", "NNGP test MSE", "NTK accuracy", "NTK test MSE",
                 "NNGP condition", "NTK condition", "kernel seconds"], rows)}

For context, on the same pixels (C chosen by 5-fold cross-validation on the training images):
{baseline_text}.
"""
    return Section(SECTION_KERNELS, body)


def trained_section(config: Config, trained: dict, fits: dict, lrs: dict, claims, n: int, k: int) -> Section:
    def ms(a):
        a = np.asarray(a, float)
        a = a[np.isfinite(a)]
        if a.size == 0:
            return "diverged"
        return f"{a.mean():.4f} +- {a.std(ddof=1):.4f}" if a.size > 1 else f"{a[0]:.4f}"

    parts = []
    for name, m in trained.items():
        rows = [[w, ms(m["acc_net"][i]), ms(m["acc_ntk"][i]), ms(m["rmse"][i]), ms(m["agree"][i]),
                 f"{np.nanmax(m['loss_ratio'][i]):.2e}", int(np.sum(m["diverged"][i]))]
                for i, w in enumerate(m["width"])]
        f = fits[name]
        fit_text = ("no fit: fewer than two widths without a diverged run" if f is None else
                    f"fitted exponent {f.exponent:+.3f} [{f.ci[0]:+.3f}, {f.ci[1]:+.3f}]")
        local = _local_slopes(m["width"], m["rmse"])
        split = (_split_text(name, m, config.expected_exponent, config.exponent_tolerance)
                 if "rmse_linear" in m else "")
        parts.append(f"""
**{name}** (step {fmt(lrs[name])} = {fmt(config.lr_fraction)} x 2 n k / lambda_max of its closed-form training
NTK, n = {n}, k = {k}; {config.steps} steps). Mean +- sd over {config.seeds} seeds; "NTK prediction" is
neural-tangents' `gradient_descent_mse` at the same step from the network's own initial outputs.

{markdown_table([("channels" if name.startswith("cnn") else "width"), "test accuracy, trained",
                 "test accuracy, its NTK prediction", "RMS gap of test outputs", "same class as its NTK prediction",
                 "worst final / initial loss", "diverged"], rows)}

RMS gap: {fit_text}; local slopes {local}. Gradient descent against the gradient flow that the
closed form solves: at most {m['step_vs_flow']:.1e} per mode of the closed-form training kernel at
t = {config.steps}, times the residual.
{split}""")
    failed = [c.id.removeprefix("digits_gap_rate_") for c in claims
              if c.id.startswith("digits_gap_rate") and not c.passed]
    note = ""
    if failed:
        unsplit = [name for name in failed if "rmse_linear" not in trained[name]]
        note = f"""
**Why a rate claim fails** ({", ".join(failed)}). The gap between a trained network and the closed
form from its own init has two sources (Lee et al. 2019): the empirical NTK's fluctuation at
initialisation, carried by the dynamics (the linearisation against the closed form), and the
kernel's change during training (the network against its linearisation); both are of order
width^(-1/2) asymptotically, with constants that grow with the training time and with the training
kernel's condition number. The local slopes show where on the ladder the measured rate departs
from -1/2: slopes that steepen towards the wide end say the ladder ends before the asymptotic
regime. The gap at the widest width is far above float32 rounding of the outputs, and gradient
descent's departure from gradient flow is bounded above, so neither flattens it.
{"" if not unsplit else f"Not split on this preset (the linearisations cost as much again to train): {', '.join(unsplit)}; the full preset splits every architecture."}
"""
    panels = {"trained network vs its closed-form NTK prediction": {
        name: (m["width"], m["rmse"], fits[name]) for name, m in trained.items()
        if np.all(np.isfinite(m["rmse"]))}}
    for name, m in trained.items():
        if "rmse_linear" not in m:
            continue
        # Widths where every part is measured (a diverged linearisation leaves NaN).
        ok = np.all([np.all(np.isfinite(m[p]), axis=1) for p in ("rmse", "rmse_nonlinear", "rmse_linear")], axis=0)
        if ok.sum() >= 2:
            w_ok = np.asarray(m["width"])[ok]
            panels[f"{name}: the gap split (widths without a diverged run)"] = {
                "trained vs closed form": (w_ok, m["rmse"][ok], None),
                "trained vs its linearisation": (w_ok, m["rmse_nonlinear"][ok], m["fit_rmse_nonlinear"]),
                "linearisation vs closed form": (w_ok, m["rmse_linear"][ok], m["fit_rmse_linear"])}
    figure = loglog_figure(
        panels,
        xlabel="width (channels for the CNN)", ylabel="RMS difference of test outputs",
        reference_exponent=config.expected_exponent, reference_label="theory: width^(-1/2)")
    acc_fig, ax = plt.subplots(figsize=(6.2, 4.2))
    for i, (name, m) in enumerate(trained.items()):
        w = np.asarray(m["width"], float)
        ax.errorbar(w, np.nanmean(m["acc_net"], axis=1), yerr=np.nanstd(m["acc_net"], axis=1), fmt="o-",
                    color=f"C{i}", ms=4, capsize=2, label=f"{name}: trained")
        ax.plot(w, np.nanmean(m["acc_ntk"], axis=1), "s--", color=f"C{i}", ms=3, lw=1,
                label=f"{name}: its NTK prediction, same step")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("width (channels for the CNN)")
    ax.set_ylabel("test accuracy")
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=7)
    acc_fig.tight_layout()
    return Section(SECTION_TRAINED, "\n".join(parts) + note, [
        Figure("gap", figure, "RMS difference between each trained network's test outputs and the "
               "closed-form NTK prediction from its own init at the same step (left), and for the "
               "linearised architectures that gap split into network vs its linearisation and "
               "linearisation vs closed form. Markers: geometric mean over seeds; band: range; thin "
               "lines: fits; dashed: width^(-1/2)."),
        Figure("accuracy", acc_fig, "Test accuracy of trained networks (mean, sd over seeds) and of "
               "their closed-form NTK predictions at the same step, against width.")])


def _split_text(name: str, m: dict, expected: float, tolerance: float) -> str:
    """The gap split into network vs its linearisation and linearisation vs closed form, as markdown."""
    def ms(a):
        a = np.asarray(a, float)
        a = a[np.isfinite(a)]
        return "diverged" if a.size == 0 else (f"{a.mean():.4f} +- {a.std(ddof=1):.4f}" if a.size > 1 else f"{a[0]:.4f}")

    rows = [[w, ms(m["rmse"][i]), ms(m["rmse_nonlinear"][i]), ms(m["rmse_linear"][i]),
             int(np.nansum(m["diverged_linear"][i]))] for i, w in enumerate(m["width"])]

    def fitted(part):
        f = m[f"fit_{part}"]
        text = "no fit" if f is None else f"{f.exponent:+.3f} [{f.ci[0]:+.3f}, {f.ci[1]:+.3f}]"
        return f"{text} (local slopes {_local_slopes(m['width'], m[part])})"

    wide = {part: float(np.nanmean(m[part][-1])) for part in ("rmse_nonlinear", "rmse_linear")}
    dominant = ("the network's departure from its own linearisation" if wide["rmse_nonlinear"] > wide["rmse_linear"]
                else "the linearisation's distance from the closed form")

    def verdict(part, what):
        f = m[f"fit_{part}"]
        if f is None:
            return f"{what}: no fit"
        inside = abs(f.exponent - expected) <= tolerance
        return f"{what} falls at {f.exponent:+.2f}, {'within' if inside else 'outside'} {tolerance} of {expected}"

    reading = (verdict("rmse_nonlinear", "The kernel's change in training (network vs linearisation)") + "; "
               + verdict("rmse_linear", "the init kernel's fluctuation carried by the linear dynamics "
                                        "(linearisation vs closed form)") + ".")
    return f"""
The gap split (each network's linearisation around its init trained beside it, same optimizer and
steps; RMS over test outputs, mean +- sd over seeds):

{markdown_table(["width", "trained vs closed form", "trained vs its linearisation",
                 "linearisation vs closed form", "linearisations diverged"], rows)}

Fitted exponents: trained vs its linearisation {fitted("rmse_nonlinear")}; linearisation vs closed
form {fitted("rmse_linear")}. At width {m["width"][-1]} the larger part is {dominant}. {reading}
"""


def _local_slopes(widths, values) -> str:
    """Slopes between neighbouring widths of the geometric mean over seeds; widths with a diverged run left out."""
    v = np.asarray(values, float)
    ok = np.all(np.isfinite(v) & (v > 0), axis=1)
    widths = np.asarray(widths)[ok]
    g = np.exp(np.mean(np.log(v[ok]), axis=1))
    return ", ".join(f"{a}->{b}: {np.log(gb / ga) / np.log(b / a):+.2f}"
                     for a, b, ga, gb in zip(widths[:-1], widths[1:], g[:-1], g[1:]))


def _mean_sd(a) -> str:
    a = np.asarray(a, float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return "diverged"
    return f"{a.mean():.4f} +- {a.std(ddof=1):.4f}" if a.size > 1 else f"{a[0]:.4f}"


def centred_section(config: Config, closed: dict, trained: dict, n_test: int) -> Section:
    centred = {name: m for name, m in trained.items() if "acc_centred" in m}
    rows = []
    for name, m in centred.items():
        cs = m["centred_seeds"]
        for i, w in enumerate(m["width"]):
            rows.append([name, w, _mean_sd(m["acc_net"][i]), _mean_sd(m["acc_centred"][i, :cs]),
                         _mean_sd(m["rmse_centred"][i, :cs]), _mean_sd(m["agree_centred"][i, :cs]),
                         int(np.nansum(m["diverged_centred"][i, :cs]))])
    limits = [[name, f"{m['acc_mean_step']:.4f}", f"{closed[name]['ntk']['accuracy']:.4f}",
               f"{closed[name]['ntk']['condition']:.3g}"] for name, m in centred.items()]
    seeds = {m["centred_seeds"] for m in centred.values()}
    seeds_text = (f"the first {seeds.pop()} of the {config.seeds} seeds" if len(seeds) == 1 and
                  config.centred_seeds not in (None, config.seeds) else f"all {config.seeds} seeds")
    body = f"""
A network's output at initialisation, f(x; theta_0), is a draw from the NNGP (order 1 per output,
against targets 0.9 and -0.1), and gradient descent on mse carries the part of it that the training
images do not pin down into the test outputs. The closed-form NTK regression of the table starts
from zero outputs. A **centred network** removes the difference: its output is
f(x; theta) - f(x; theta_0), theta_0 the initial parameters, held fixed (`replication.train.centred`;
the centred model of Chizat et al. 2019). It is zero at initialisation and has the uncentred
network's Jacobian, so the same empirical NTK, at every theta (a test checks both). Trained by
gradient descent on mse it follows the NTK dynamics from zero outputs, whose infinite-width limit
is the closed-form mean predictor at the same step (Lee et al. 2019). Zero-initialising the readout
would also start from zero outputs, but its NTK at initialisation loses every hidden layer's term
(their gradients pass through the zero readout weights): another kernel, so it was not used.

Since f(x; theta_0) on the training images is a constant, the centred network's loss is the
uncentred network's on targets y + f(x_train; theta_0): each centred network is trained with the
uncentred one's compiled program, from the same init, optimizer, step size and number of steps
({config.steps}), at every width, with {seeds_text} (mean +- sd over them; the uncentred column over
all {config.seeds}). "RMS gap" and "same class" compare its test outputs with the closed-form NTK mean
predictor at step {config.steps}, which is the same for every seed.

{markdown_table(["architecture", "width", "test accuracy, uncentred", "test accuracy, centred",
                 "RMS gap, centred vs NTK mean predictor", "same class as NTK mean predictor",
                 "centred diverged"], rows)}

The NTK mean predictor, from zero outputs, at the networks' training time and at t -> infinity
(the table's NTK column), with the training kernel's condition number:

{markdown_table(["architecture", f"NTK mean predictor, step {config.steps}", "NTK, t -> infinity",
                 "NTK condition"], limits)}

Gradient descent for {config.steps} steps at half the stable step shrinks the training residual's
component along a kernel mode of eigenvalue lambda by exp(-{config.steps} lambda / lambda_max) at
most: a mode with lambda / lambda_max below about 1 / {config.steps} is barely trained, and a kernel
whose condition number is far above {config.steps} leaves much of the residual in such modes. Where the
two columns differ, that is training time, not width: the centred networks are measured against
the first column, the prediction for their own training time, as theory states it.
"""
    fig, axes = plt.subplots(1, len(centred), figsize=(3.1 * len(centred), 3.4), sharey=True, squeeze=False)
    for ax, (name, m) in zip(axes[0], centred.items()):
        w = np.asarray(m["width"], float)
        cs = m["centred_seeds"]
        ax.errorbar(w, np.nanmean(m["acc_net"], axis=1), yerr=np.nanstd(m["acc_net"], axis=1), fmt="o-",
                    color="C0", ms=4, capsize=2, label="trained")
        ax.plot(w, np.nanmean(m["acc_ntk"], axis=1), "s:", color="C0", ms=3, lw=1,
                label="its NTK prediction, same step")
        ax.errorbar(w, np.nanmean(m["acc_centred"][:, :cs], axis=1),
                    yerr=np.nanstd(m["acc_centred"][:, :cs], axis=1), fmt="^-", color="C3", ms=4, capsize=2,
                    label="centred, trained")
        ax.axhline(m["acc_mean_step"], color="C3", ls="--", lw=1,
                   label=f"NTK mean predictor, step {config.steps}")
        ax.axhline(closed[name]["ntk"]["accuracy"], color="k", ls=":", lw=1, label="NTK, t -> infinity")
        ax.set_xscale("log", base=2)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("channels" if name.startswith("cnn") else "width")
        ax.grid(True, alpha=0.25)
    axes[0, 0].set_ylabel("test accuracy")
    axes[0, -1].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return Section(SECTION_CENTRED, body, [
        Figure("centred", fig, "Test accuracy against width, per architecture: uncentred networks (circles, "
               "mean and sd over seeds) and their own NTK predictions at the same step (squares); centred "
               "networks f(x; theta) - f(x; theta_0) (triangles) and the closed-form NTK mean predictor "
               f"at the same step (dashed), which theory says they approach; dotted: NTK regression at t -> "
               "infinity, the table's NTK column.")])


def table_section(config: Config, closed: dict, trained: dict, base: dict) -> Section:
    def best(m, key, seeds):
        mean = np.nanmean(m[key][:, :seeds], axis=1)
        if not np.any(np.isfinite(mean)):
            return "diverged"
        i = int(np.nanargmax(mean))
        return f"{mean[i]:.4f} (width {m['width'][i]}, mean of {seeds})"

    rows = []
    for name in config.architectures:
        m = trained.get(name)
        if m is None:
            centred = uncentred = "not trained in this preset"
            at_step = ""
        else:
            uncentred = best(m, "acc_net", config.seeds)
            centred = best(m, "acc_centred", m["centred_seeds"]) if "acc_centred" in m else "not centred"
            at_step = f"{m['acc_mean_step']:.4f}" if "acc_mean_step" in m else ""
        rows.append([name, centred, uncentred, closed[name]["nngp"]["accuracy"], closed[name]["ntk"]["accuracy"],
                     at_step])
    rows += [[f"{k} (baseline)", "", "", "", f"{v['accuracy']:.4f}", ""] for k, v in base.items()]
    body = f"""
Test accuracy. Best finite network: the width whose networks, trained for {config.steps} steps of
gradient descent, have the highest mean test accuracy, centred (f(x; theta) - f(x; theta_0), from
zero outputs as the kernels' predictions are; previous section) and uncentred (f(x; theta), which
keeps its random initial function). NNGP and NTK: closed-form kernel regression, the mean
predictors, at t -> infinity; last column: the NTK mean predictor at the networks' training time,
the limit that the centred networks approach with width (the claims on centred networks). Unlike Lee et al.
2018 no hyperparameter was tuned for the networks or kernels (W_std, b_std, depth and training
time are fixed above).

The uncentred column is not a fair comparison with the kernels: the initial outputs' standard
deviation (about the square root of the NNGP's diagonal, of order 1) is large against the targets'
0.9 and -0.1, and the part of it that the training images do not pin down stays in the test
outputs; the uncentred networks approach their own NTK predictions, from the same initial outputs
(the claims on widest networks' accuracy), not the mean predictor. The centred column compares like with like; what
is left between it and the NTK column is finite width and, where the last two columns differ,
training time.

{markdown_table(["architecture", "best centred network", "best uncentred network", "NNGP", "NTK",
                 f"NTK, step {config.steps}"], rows)}
"""
    return Section(SECTION_TABLE, body)
