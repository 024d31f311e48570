"""The data, and closed-form NNGP and NTK regression on it, next to two scikit-learn baselines.

NNGP regression is the GP posterior mean ``K_test,train K_train^-1 y``; NTK
regression is the ``t -> infinity`` limit of gradient descent on mse, the same
formula with the NTK (``replication.dynamics.gradient_descent_mse``, from zero
initial outputs).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from replication.data import Digits
from replication.experiments.digits.task import ARCHITECTURES, Task, closed_form
from replication.report import Findings, Section, fmt, markdown_table
from replication.sweep import Streams, measured_once, progress

SECTION_DATA = "Data"
SECTION_KERNELS = "Closed-form NNGP and NTK regression"


@dataclass(frozen=True)
class Config:
    task: Task = Task()
    architectures: tuple[str, ...] = ARCHITECTURES   # those whose closed forms are computed


@dataclass
class Result:
    split_seed: int
    data: Digits
    closed: dict      # per architecture: kernel seconds; NNGP and NTK accuracy, mse, lambda_max, condition
    baselines: dict   # per baseline: test accuracy and the C chosen


@measured_once
def measure(config: Config, streams: Streams) -> Result:
    data = config.task.data(streams)
    closed = {}
    with progress(len(config.architectures), "digits kernels") as bar:
        for name in config.architectures:
            closed[name] = closed_form(config.task, name, streams)[1]
            bar.update()
    return Result(streams.offset("split"), data, closed, baselines(data, streams.offset("baselines")))


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


def findings(config: Config, result: Result) -> Findings:
    data = result.data
    series = {"data": {"index_train": data.index_train, "index_test": data.index_test,
                       "pixel_mean": data.pixel_mean, "pixel_std": data.pixel_std},
              "closed_form": result.closed, "baselines": result.baselines}
    return Findings(sections=[data_section(config.task, result), kernel_section(config, result)],
                    series=series)


def _used(task: Task) -> str:
    """Which images of the split a run uses, in words."""
    if task.n_train is None and task.n_test is None:
        return "both splits whole"
    train = "all of the training split" if task.n_train is None else f"a stratified subset of {task.n_train}"
    test = "all of the test split" if task.n_test is None else f"a stratified subset of {task.n_test}"
    return f"{train} and {test} (drawn with the same seed)"


def data_section(task: Task, result: Result) -> Section:
    data = result.data
    counts = [[c, int(np.sum(data.labels_train == c)), int(np.sum(data.labels_test == c))] for c in range(10)]
    body = f"""
scikit-learn's `load_digits` (1,797 images, 8x8 pixels with values 0 to 16, 10 classes; shipped
with the package). Split once, stratified by class, with seed {result.split_seed}: {task.test_size} images
held out as the test split, the other {1797 - task.test_size} the training split
(`sklearn.model_selection.train_test_split`); this run uses {_used(task)}:
**{data.y_train.shape[0]} training and {data.y_test.shape[0]} test images**, none shared. Inputs: pixels minus {data.pixel_mean:.4f}, divided by {data.pixel_std:.4f} (one mean and one
standard deviation over every pixel of the training images; per-pixel statistics would divide the
nearly always blank border pixels by a near-zero deviation). Targets: one-hot minus 1/10, so each
row sums to zero (Lee et al. 2018); a prediction's class is its largest output. The images' indices
in `load_digits()` are in the JSON sidecar.

{markdown_table(["class", "training images", "test images"], counts)}
"""
    return Section(SECTION_DATA, body)


def kernel_section(config: Config, result: Result) -> Section:
    task, closed, n = config.task, result.closed, result.data.y_train.shape[0]
    baseline_text = ", ".join(f"{k} {v['accuracy']:.4f} (C = {v['C']})" for k, v in result.baselines.items())
    rows = [[name, closed[name]["nngp"]["accuracy"], closed[name]["nngp"]["mse"],
             closed[name]["ntk"]["accuracy"], closed[name]["ntk"]["mse"],
             f"{closed[name]['nngp']['condition']:.3g}", f"{closed[name]['ntk']['condition']:.3g}",
             f"{closed[name]['kernel_seconds']:.1f}"] for name in config.architectures]
    body = f"""
ReLU networks in NTK parameterization, W_std = {fmt(task.W_std)}, b_std = {fmt(task.b_std)}, 10
outputs: `mlp-d` has d hidden dense layers; `cnn-flatten` and `cnn-gap` have {task.cnn_depth}
convolution(s) of {task.cnn_kernel_size}x{task.cnn_kernel_size} filters, stride 1, SAME padding,
then a dense readout of all positions (flatten) or of their average (global average pooling){_left_out(config)}.
NNGP regression is the GP posterior mean, K_test,train K_train^-1 y; NTK regression is the t ->
infinity limit of gradient descent on mse, the same formula with the NTK (neural-tangents'
`gradient_descent_mse` with t = None, from zero initial outputs), regulariser
{fmt(task.diag_reg)} times the mean diagonal{" (none)" if task.diag_reg == 0 else ""}. Kernels
in float64 in blocks (`kernels.blocked`) of {task.kernel_batch} x {task.kernel_batch} inputs; a CNN's
first convolution is computed as a 1x1 convolution of 3x3 patches (the same kernel, checked by a
test), which cuts global average pooling's (HW)^2 = 4096 covariances per pair of images to one
multiply each in that layer. Condition numbers are those of the training kernel on {n} images.

{markdown_table(["architecture", "NNGP accuracy", "NNGP test MSE", "NTK accuracy", "NTK test MSE",
                 "NNGP condition", "NTK condition", "kernel seconds"], rows)}

For context, on the same pixels (C chosen by 5-fold cross-validation on the training images):
{baseline_text}.
"""
    return Section(SECTION_KERNELS, body)


def _left_out(config: Config) -> str:
    """The architectures this run does not compute, in words (empty when it computes all)."""
    missing = [a for a in ARCHITECTURES if a not in config.architectures]
    return f"; not computed in this run: {', '.join(missing)}" if missing else ""
