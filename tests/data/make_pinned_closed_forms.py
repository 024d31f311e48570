"""Writes pinned_closed_forms.npz: every closed form the study uses, computed on the stack that
neural-tangents 0.6.5 was written for (jax/jaxlib 0.4.25, numpy 1.26), in float64.

tests/test_compat.py compares the current stack with these values, so a JAX release that changes
what neural-tangents computes fails loudly. Run with that stack's interpreter, from the repository:

    XLA_FLAGS=--xla_disable_hlo_passes=onednn-matmul-rewriter python tests/data/make_pinned_closed_forms.py
"""
import sys
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import neural_tangents as nt  # noqa: E402

from specs import CNN_SPECS, MLP_SPECS, spec_id  # noqa: E402


def inputs(rng):
    return {"mlp": rng.standard_normal((6, 5)), "cnn": rng.standard_normal((4, 5, 5, 2)),
            "mlp_test": rng.standard_normal((3, 5)), "y": rng.standard_normal((6, 2)),
            "f0": rng.standard_normal((6, 2)), "f0_test": rng.standard_normal((3, 2))}


def main():
    data = inputs(np.random.default_rng(20260101))
    out = {f"input/{k}": v for k, v in data.items()}
    x_mlp, x_cnn = jnp.asarray(data["mlp"]), jnp.asarray(data["cnn"])
    for spec in MLP_SPECS + CNN_SPECS:
        x = x_mlp if spec in MLP_SPECS else x_cnn
        k = spec.stax()[2](x, None, ("nngp", "ntk"))
        out[f"kernel/{spec_id(spec)}/nngp"], out[f"kernel/{spec_id(spec)}/ntk"] = map(np.asarray, k)
        if spec in CNN_SPECS:
            k = spec.stax_on_patches()[2](spec.patches(x), None, ("nngp", "ntk"))
            out[f"patches/{spec_id(spec)}/nngp"], out[f"patches/{spec_id(spec)}/ntk"] = map(np.asarray, k)
    # The predictors, on one MLP's kernels.
    spec = MLP_SPECS[0]
    kernel_fn = spec.stax()[2]
    xt = jnp.asarray(data["mlp_test"])
    k_tt, k_te = kernel_fn(x_mlp, None, "ntk"), kernel_fn(xt, x_mlp, "ntk")
    y = jnp.asarray(data["y"])
    predict = nt.predict.gradient_descent_mse(k_tt, y, learning_rate=0.5)
    for t in (0.0, 10.0, None):
        train, test = predict(t, jnp.asarray(data["f0"]), jnp.asarray(data["f0_test"]), k_te)
        out[f"gradient_descent_mse/{t}/train"], out[f"gradient_descent_mse/{t}/test"] = map(np.asarray, (train, test))
    ensemble = nt.predict.gradient_descent_mse_ensemble(kernel_fn, x_mlp, y, learning_rate=0.5)
    for t in (0.0, 10.0, None):
        p = ensemble(t, xt, "ntk", compute_cov=True)
        out[f"ensemble/{t}/mean"], out[f"ensemble/{t}/cov"] = np.asarray(p.mean), np.asarray(p.covariance)
    gp = nt.predict.gp_inference(kernel_fn(x_mlp, None, "nngp"), y, diag_reg=0.04, diag_reg_absolute_scale=True)
    post = gp("nngp", kernel_fn(xt, x_mlp, "nngp"), kernel_fn(xt, None, "nngp"))
    out["gp_inference/mean"], out["gp_inference/cov"] = np.asarray(post.mean), np.asarray(post.covariance)
    out["versions"] = np.array([jax.__version__, np.__version__])
    np.savez_compressed(Path(__file__).with_name("pinned_closed_forms.npz"), **out)
    print(f"{len(out)} arrays")


if __name__ == "__main__":
    main()
