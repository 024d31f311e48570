"""The command line: bad values get one line and exit status 2; a run writes a report."""
import json
import subprocess
import sys

import pytest

from replication.cli import main


@pytest.mark.parametrize("argv, named", [
    (["run", "nope"], "unknown experiment 'nope'; allowed: nngp, ntk, regression"),
    (["run", "ntk", "--preset", "huge"], "unknown preset 'huge'; allowed: quick, full"),
    (["run", "ntk", "--widths", "64,0"], "width '0' is not a positive integer"),
    (["run", "ntk", "--widths", "64,x"], "width 'x' is not a positive integer"),
    (["run", "ntk", "--seeds", "-2"], "seed count '-2' is not a positive integer"),
    (["run", "ntk", "--depth", "1.5"], "depth '1.5' is not a positive integer"),
    (["run", "ntk", "--activation", "tanh"], "unknown activation 'tanh'; allowed: relu, erf, gelu"),
    (["run", "ntk", "--parameterization", "mup"], "unknown parameterization 'mup'"),
    (["run", "ntk", "--lr", "-1"], "learning rate '-1' is not a positive finite number"),
    (["run", "ntk", "--lr", "inf"], "learning rate 'inf' is not a positive finite number"),
    (["run", "ntk", "--lr", "0.1"], "option --lr does not apply to experiment 'ntk'"),
])
def test_bad_input_one_line_exit_2_nothing_written(argv, named, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1
    assert not out.exists()


def test_bench_refuses_an_unknown_preset(tmp_path, capsys):
    assert main(["bench", "--preset", "huge", "--out", str(tmp_path / "out")]) == 2
    assert "unknown preset 'huge'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bad_input_from_the_shell(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "replication", "run", "nope"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "replication: error: unknown experiment 'nope'; allowed: nngp, ntk, regression, lazy, mup, digits"]


def test_list(capsys):
    assert main(["list"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["nngp", "ntk", "regression", "lazy", "mup", "digits"]


def test_run_writes_report_and_sidecar(tmp_path, capsys, monkeypatch):
    from dataclasses import replace

    from replication.experiments import ntk

    # The command-line options narrow every study with a setting of their name; the rest shrink here.
    quick = ntk.PRESETS["quick"]
    small = replace(
        quick, jacot=replace(quick.jacot, angles=9),
        ensemble=replace(quick.ensemble, width=32, members=8, times=(0, 10)),
        fluctuations=replace(quick.fluctuations, depths=(1, 2), samples=64, law_draws=1024),
        first_step=replace(quick.first_step, depths=(2,), betas=(1 / 8, 1 / 4), samples=64))
    monkeypatch.setitem(ntk.PRESETS, "quick", small)
    argv = ["run", "ntk", "--widths", "16,64", "--seeds", "2", "--depth", "1",
            "--activation", "erf", "--parameterization", "ntk", "--out", str(tmp_path)]
    assert main(argv) == 0
    side = json.loads((tmp_path / "ntk.json").read_text())
    assert side["preset"] == "quick" and side["config"]["kernel_rate"]["widths"] == [16, 64]
    assert side["config"]["stability"]["widths"] == [16, 64]
    ids = [c["id"] for c in side["claims"]]
    assert ids[0] == "ntk_init_rate_ntk_erf_depth1" and len(ids) == len(set(ids))
    assert (tmp_path / "figures" / "ntk_init_convergence.png").exists()
    md = (tmp_path / "ntk.md").read_text()
    assert md.startswith("# ")
    # The report says how to reproduce it, options included.
    assert ("`python -m replication run ntk --preset quick --widths 16,64 --seeds 2 --depth 1 "
            "--activation erf --parameterization ntk`") in md
