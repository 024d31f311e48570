"""The parametrised set of architectures every agreement test runs over."""
import itertools

from replication.arch import CNN, MLP

MLP_SPECS = [
    MLP(width=1, depth=depth, activation=act, b_std=b_std, parameterization=p)
    for depth, act, p, b_std in itertools.product(
        (1, 2, 3), ("relu", "erf", "gelu"), ("ntk", "standard"), (0.1, None))
]
CNN_SPECS = [
    CNN(width=1, depth=depth, activation=act, b_std=b_std, parameterization=p, readout=readout)
    for (depth, readout, p), act, b_std in zip(
        itertools.product((1, 2), ("flatten", "gap"), ("ntk", "standard")),
        itertools.cycle(("relu", "erf", "gelu")), itertools.cycle((0.1, None, None)))
]
SPECS = MLP_SPECS + CNN_SPECS


def spec_id(spec) -> str:
    kind = type(spec).__name__
    extra = f"-{spec.readout}" if kind == "CNN" else ""
    bias = "bias" if spec.b_std is not None else "nobias"
    return f"{kind}{extra}-d{spec.depth}-{spec.activation}-{spec.parameterization}-{bias}"


def inputs_for(spec, key, n):
    import jax

    shape = (n, 5) if isinstance(spec, MLP) else (n, 5, 5, 2)
    return jax.random.normal(key, shape)
