"""The report writer: claims first, relative figure links, sidecar, atomic writes."""
import json

import matplotlib.pyplot as plt
import numpy as np
import pytest

from replication.report import Check, Claim, Figure, Report, Section, anchor, write_report


def claim(measured, relation="=", half=0.02, **kw):
    ci = None if measured is None or half is None else (measured - half, measured + half)
    return Claim(id="c", statement="s", prediction="p", expected=-0.5, measured=measured,
                 ci=ci, tolerance=0.1, section="Evidence", relation=relation, **kw)


def test_claim_verdicts_come_from_the_interval():
    """Band [-0.6, -0.4] for "=", (-inf, -0.4] for "<=", [-0.6, inf) for ">=". """
    assert claim(-0.45).verdict == "holds"
    assert claim(-0.41).verdict == "inconclusive"            # point inside, interval reaches out
    assert claim(-0.39).verdict == "inconclusive"            # point outside, interval reaches in
    assert claim(-0.45, half=0.2).verdict == "inconclusive"  # too wide to decide
    assert claim(-0.3).verdict == "fails" and claim(-0.75).verdict == "fails"
    assert claim(-0.3, "<=").verdict == "fails" and claim(-2.0, "<=").verdict == "holds"
    assert claim(-0.7, ">=").verdict == "fails" and claim(5.0, ">=").verdict == "holds"
    assert claim(-0.5, half=None).verdict == "inconclusive"  # no interval: nothing decided
    assert claim(None).verdict == "fails" and claim(float("nan")).verdict == "fails"
    with pytest.raises(ValueError, match="relation"):
        claim(0.0, "~")


def test_a_claim_on_a_fit_records_how_its_interval_was_made():
    from replication.stats import fit_power_law

    widths = [64, 128, 256, 512]
    errors = np.array([[1.0, 1.1], [0.7, 0.8], [0.5, 0.52], [0.36, 0.35]])
    c = Claim.of_fit(fit_power_law(widths, errors), id="r", statement="s", prediction="p",
                     expected=-0.5, tolerance=0.1, section="E")
    d = c.as_dict()
    assert d["n_seeds"] == 2 and d["fit_range"] == [64, 512] and "Student-t" in d["interval_method"]
    assert d["verdict"] == c.verdict and d["reason"].startswith("+-0.1")   # the exponent band's reason


def test_checks_are_shown_and_not_counted():
    check = Check(id="k", statement="same draw", expected=0.0, measured=0.0, tolerance=0.0,
                  section="Evidence", why="one random draw", relation="<=")
    assert check.passed and not Check(**{**check.__dict__, "measured": 1e-3}).passed
    report = make_report()
    report.checks = [check]
    md = render(report)
    assert "### Checks" in md and "one random draw" in md and "2 claims: 1 holds, 1 fails" in md


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
    assert "2 claims: 1 holds, 1 fails" in md and "**fails**" in md
    assert f"](#{anchor('Evidence')})" in md
    assert "![A curve.](figures/demo_curve.png)" in md
    assert (tmp_path / "figures" / "demo_curve.png").stat().st_size > 0
    side = json.loads((tmp_path / "demo.json").read_text())
    assert {"experiment", "preset", "code_version", "versions", "seconds", "claims",
            "series"} <= side.keys()
    assert side["versions"]["neural_tangents"] == "0.6.5"
    assert [c["verdict"] for c in side["claims"]] == ["holds", "fails"]
    assert side["checks"] == []
    assert side["series"]["s"]["error"] == [0.1, None]  # NaN is not JSON


def render(report):
    from replication.report import render_markdown

    return render_markdown(report, {"versions": {}, "code_version": "x"})


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
