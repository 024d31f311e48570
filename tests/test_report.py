"""The report writer: claims first, relative figure links, sidecar, atomic writes."""
import json

import matplotlib.pyplot as plt
import numpy as np
import pytest

from replication.report import Claim, Figure, Report, Section, anchor, write_report


def claim(measured, relation="=", **kw):
    return Claim(id="c", statement="s", prediction="p", expected=-0.5, measured=measured,
                 ci=None, tolerance=0.1, section="Evidence", relation=relation, **kw)


def test_claim_verdicts():
    assert claim(-0.45).passed and not claim(-0.39).passed
    assert claim(-0.3, "<=").passed is False and claim(-0.45, "<=").passed
    assert claim(-0.7, ">=").passed is False and claim(0.0, ">=").passed
    assert not claim(None).passed and not claim(float("nan")).passed
    with pytest.raises(ValueError, match="relation"):
        claim(0.0, "~")


def make_report(figure=None):
    fig = figure or plt.figure()
    return Report(experiment="demo", title="Demo", summary="What it shows.",
                  claims=[claim(-0.48), claim(-0.2)],
                  sections=[Section("Evidence", "Body.", [Figure("curve", fig, "A curve.")])],
                  series={"s": {"width": [1, 2], "error": [0.1, float("nan")]}},
                  preset="quick", config={"widths": (1, 2)}, seconds=1.5)


def test_write_report(tmp_path):
    md_path = write_report(make_report(), tmp_path)
    md = md_path.read_text()
    assert md.index("## Claims") < md.index("## Evidence") < md.index("## How this was run")
    assert "1 of 2 claims hold" in md and "**fails**" in md
    assert f"](#{anchor('Evidence')})" in md
    assert "![A curve.](figures/demo_curve.png)" in md
    assert (tmp_path / "figures" / "demo_curve.png").stat().st_size > 0
    side = json.loads((tmp_path / "demo.json").read_text())
    assert {"experiment", "preset", "code_version", "versions", "seconds", "claims",
            "series"} <= side.keys()
    assert side["versions"]["neural_tangents"] == "0.6.5"
    assert [c["passed"] for c in side["claims"]] == [True, False]
    assert side["series"]["s"]["error"] == [0.1, None]  # NaN is not JSON


class _Exploding:
    def savefig(self, *args, **kwargs):
        raise KeyboardInterrupt


def test_interrupted_write_leaves_previous_report(tmp_path):
    write_report(make_report(), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.glob("*.*")}
    with pytest.raises(KeyboardInterrupt):
        write_report(make_report(_Exploding()), tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.*")} == before
    assert not list(tmp_path.glob(".tmp-*"))


def test_loglog_figure_takes_curves_of_different_widths():
    from replication.report import loglog_figure
    from replication.stats import fit_power_law

    a = ([2, 4, 8, 16], np.array([[1.0, 1.1], [0.5, 0.6], [0.25, 0.2], [0.12, 0.13]]))
    b = ([2, 4], np.array([[2.0], [1.0]]))
    fig = loglog_figure({"p": {"a": (*a, fit_power_law(*a)), "b": (*b, None)}},
                        xlabel="w", ylabel="e", reference_exponent=-1.0)
    line = [ln for ln in fig.axes[0].lines if ln.get_linestyle() == "--"][0]
    assert list(line.get_xdata()) == [2, 4, 8, 16]
    assert line.get_ydata()[0] >= 2.0  # above the highest curve
    plt.close(fig)
