"""Faults: an interrupted run leaves the previous report whole; a diverging run is recorded and the
sweep goes on; the same run twice gives the same numbers."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pytest

from replication.experiments import mup
from replication.experiments.mup import coordinates
from replication.report import Figure, Report, Section, write_report
from replication.sweep import Streams

# Runs ``python -m replication run mup`` in a fresh process that sends itself the signal named
# in argv[1] as soon as its first training run returns: mid-way through the experiment, with the
# command line's own handlers in place.
_SIGNAL_MID_RUN = textwrap.dedent("""
    import os, signal, sys
    from replication.cli import main
    from replication.experiments.mup import coordinates

    # As in a terminal: a process started in the background by a shell inherits SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    fit = coordinates.fit
    def fit_then_signal(*args, **kwargs):
        out = fit(*args, **kwargs)
        os.kill(os.getpid(), getattr(signal, sys.argv[1]))
        return out
    coordinates.fit = fit_then_signal
    sys.exit(main(["run", "mup", "--out", sys.argv[2]]))
""")


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _previous_report(folder):
    (folder / "figures").mkdir(parents=True)
    (folder / "mup.md").write_text("# the previous report\n")
    (folder / "mup.json").write_text('{"claims": []}\n')
    (folder / "figures" / "mup_coord_check_change.png").write_bytes(b"previous figure")
    return _tree(folder)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_run_killed_mid_way_leaves_the_previous_report_and_no_temporary_files(signame, tmp_path):
    before = _previous_report(tmp_path)
    proc = subprocess.run([sys.executable, "-c", _SIGNAL_MID_RUN, signame, str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("replication: interrupted")
    assert _tree(tmp_path) == before  # byte for byte, and nothing added (no .tmp-* left)


def _report(title):
    fig = plt.figure()
    return Report(experiment="demo", title=title, summary="s", claims=[],
                  sections=[Section("A", "", [Figure("one", fig, "c"), Figure("two", plt.figure(), "c")])],
                  preset="quick", seconds=1.0)


@pytest.fixture
def sigint_raises():
    """Ctrl-C's usual handler, whatever this process inherited (a background job ignores SIGINT)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_signal_while_the_report_is_put_in_place_waits_until_it_is_whole(tmp_path, monkeypatch,
                                                                           sigint_raises):
    """The first rename triggers SIGINT; it is held until every file is in place, then raised."""
    write_report(_report("old"), tmp_path)
    replace = os.replace
    calls = []

    def replace_then_interrupt(src, dst):
        replace(src, dst)
        calls.append(dst)
        if len(calls) == 1:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_report(_report("new"), tmp_path)
    assert len(calls) == 4  # two figures, the sidecar, the markdown: all of them
    assert (tmp_path / "demo.md").read_text().startswith("# new")
    assert not list(tmp_path.glob(".tmp-*"))


def test_a_diverging_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    """SP at the learning rate stable at its base width: a network 32x wider has a kernel about
    32x larger, so each step multiplies its error by about |1 - 32 * 0.9 * 2| ~ 57, and 40 steps
    overflow float32; the narrow widths train. The divergence is counted in the table and the
    JSON, NaN there becomes null, and muP, trained after SP, is measured at every width."""
    c = coordinates.Config(widths=(32, 64, 1024), base_width=32, depth=2, seeds=2, steps=40,
                           lr_fraction=0.9)
    found = coordinates.findings(c, coordinates.measure(c, Streams(0, mup.STREAMS)))
    report = Report(experiment="mup", title="t", summary="s", claims=found.claims, sections=found.sections,
                    series=found.series, preset="quick", seconds=1.0)
    write_report(report, tmp_path)
    side = json.loads((tmp_path / "mup.json").read_text())
    sp = np.array(side["series"]["coord_check"]["standard/readout"], dtype=float)  # null -> nan
    assert np.isnan(sp[-1, :, -1, 1]).all() and np.isfinite(sp[0, :, -1, 1]).all()
    mu = np.array(side["series"]["coord_check"]["mup/dense_0"], dtype=float)
    assert np.isfinite(mu).all()
    # The last such row: the several-steps table, after the first-order one.
    row = [line for line in (tmp_path / "mup.md").read_text().splitlines()
           if line.startswith("| SP | readout |")][-1]
    assert row.rstrip(" |").rsplit("|", 1)[-1].strip() == str(coordinates.trajectories(c))  # diverged runs
    by_id = {cl["id"]: cl for cl in side["claims"]}
    assert by_id["mup_coord_mup_dense_0"]["measured"] is not None


_DETERMINISM = textwrap.dedent("""
    import dataclasses, sys
    from replication.cli import main
    from replication.experiments import mup

    quick = mup.PRESETS["quick"]
    mup.PRESETS["quick"] = dataclasses.replace(
        quick, coordinates=dataclasses.replace(quick.coordinates, widths=(32, 128), steps=3),
        transfer=dataclasses.replace(quick.transfer, widths=(128, 256), steps=10, sgd_log2_lr_halves=(-6, -2),
                                     adam_log2_lr_halves=(-16, -12), log2_alpha_halves=(-2, 2), bootstrap=20),
        initialisation=dataclasses.replace(quick.initialisation, widths=(64, 256)),
        trained=dataclasses.replace(quick.trained, widths=(64, 256)),
        limit=dataclasses.replace(
            quick.limit, line=dataclasses.replace(quick.limit.line, n_train=8, n_test=16, steps=40, record_every=20),
            nodes=(8, 16), widths=(64, 256),
            plane=dataclasses.replace(quick.limit.plane, n_train=8, n_test=16, steps=20, record_every=20),
            plane_nodes=(4, 6), sample_sizes=(8,), draws=2))
    sys.exit(main(["run", "mup", "--seeds", "2", "--out", sys.argv[1]]))
""")


def test_the_same_run_twice_gives_identical_numbers(tmp_path):
    """Two processes, same preset and seed, run side by side: every JSON number equal, wall time aside."""
    procs = {name: subprocess.Popen([sys.executable, "-c", _DETERMINISM, str(tmp_path / name)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("a", "b")}
    sides = []
    try:
        for name, proc in procs.items():
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
            side = json.loads((tmp_path / name / "mup.json").read_text())
            assert side.pop("seconds") > 0
            assert set(side.pop("study_seconds")) == {"scalings", "coordinates", "transfer", "initialisation",
                                                      "trained", "limit"}
            sides.append(side)
    finally:
        for proc in procs.values():
            proc.kill()
    assert sides[0] == sides[1]
    assert sides[0]["claims"] and all(c["id"].startswith(("mup_", "ntk_limit_")) for c in sides[0]["claims"])
