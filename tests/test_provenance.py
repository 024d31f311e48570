"""make rebuilds a report only when what it is built from changed; the landing page of verdicts."""
import json
import re
import shutil
import subprocess
import sys
import time

import pytest

from replication import provenance
from replication.experiments import EXPERIMENTS


def test_inputs_follow_imports_and_nothing_else():
    ntk = provenance.inputs("ntk")
    assert {"replication/experiments/ntk/__init__.py", "replication/experiments/ntk/jacot.py",
            "replication/experiments/__init__.py", "replication/studies/kernel_rate.py",
            "replication/kernels.py", "replication/train.py", "replication/dynamics.py",
            "replication/__init__.py", "replication/cli.py", "requirements.lock"} <= set(ntk)
    # Another experiment, the benchmark (imported by the runner only for `bench`) and the
    # tests are not inputs of this report.
    assert not ({"replication/experiments/mup/__init__.py", "replication/bench.py"} & set(ntk)
                or any(f.startswith("replication/experiments/mup/") for f in ntk))
    with pytest.raises(ValueError, match="no module"):
        provenance.inputs("nope")


@pytest.fixture
def copy_of_the_code(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    shutil.copytree(provenance.ROOT / "replication", root / "replication",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(provenance.ROOT / "requirements.lock", root)
    monkeypatch.setattr(provenance, "ROOT", root)
    return root


def test_the_digest_changes_with_an_input_and_only_then(copy_of_the_code):
    root = copy_of_the_code
    before = {e: provenance.digest(e) for e in ("ntk", "mup")}
    with open(root / "replication/experiments/mup/transfer.py", "a") as f:
        f.write("\n# a change\n")
    assert provenance.digest("mup") != before["mup"] and provenance.digest("ntk") == before["ntk"]
    with open(root / "requirements.lock", "a") as f:
        f.write("# a change\n")
    assert provenance.digest("ntk") != before["ntk"]


def _fake_report(out, experiment, preset="quick", digest=None, claims=()):
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{experiment}.md").write_text(f"# {experiment}\n")
    side = {"experiment": experiment, "preset": preset, "claims": list(claims),
            "inputs_digest": provenance.digest(experiment) if digest is None else digest,
            "versions": {"jax": "0.4.25"}, "seconds": 1.0, "precision": "float32",
            "code_version": "abc1234"}
    (out / f"{experiment}.json").write_text(json.dumps(side))


def test_fresh_only_for_the_same_inputs_and_preset(tmp_path):
    _fake_report(tmp_path, "mup")
    assert provenance.fresh("mup", "quick", tmp_path)
    assert not provenance.fresh("mup", "full", tmp_path)
    _fake_report(tmp_path, "mup", digest="0" * 64)
    assert not provenance.fresh("mup", "quick", tmp_path)
    _fake_report(tmp_path, "mup")
    (tmp_path / "mup.md").unlink()
    assert not provenance.fresh("mup", "quick", tmp_path)


def test_make_all_with_every_report_up_to_date_does_no_work(tmp_path):
    """What a second `make all` sees: every sidecar's digest matches. It runs nothing, writes
    the landing page, and takes seconds (one standard-library check per report)."""
    for e in EXPERIMENTS:
        _fake_report(tmp_path, e)
    start = time.perf_counter()
    proc = subprocess.run(["make", "-s", "all", f"REPORTS={tmp_path}", f"PY={sys.executable}"],
                          cwd=provenance.ROOT, capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("is up to date") == len(EXPERIMENTS), proc.stdout
    assert "replication run" not in proc.stdout
    assert (tmp_path / "README.md").is_file()
    assert seconds < 30


def _claim(id, measured, section):
    return {"id": id, "statement": f"statement {id}", "prediction": "error ~ width^(-1/2)",
            "expected": -0.5, "measured": measured, "ci": [measured - 0.05, measured + 0.05],
            "tolerance": 0.1, "relation": "=", "section": section, "verdict": None}


def test_landing_page_lists_every_claim_with_its_verdict_and_link(tmp_path):
    from replication import landing

    _fake_report(tmp_path, "ntk", claims=[_claim("a", -0.48, "NTK at init"),
                                         _claim("b", -0.2, "Training, to convergence"),
                                         _claim("d", -0.42, "Training, to convergence")])
    _fake_report(tmp_path, "nngp", claims=[_claim("c", -0.51, "NNGP")])
    path = landing.write(tmp_path)
    text = path.read_text()
    assert "**4 claims across 2 reports: 2 hold, 1 are inconclusive, 1 fail.**" in text
    # nngp before ntk (the study's order), each claim linked to its section's anchor.
    assert text.index("[statement c](nngp.md#nngp)") < text.index("[statement a](ntk.md#ntk-at-init)")
    fails, undecided = text.index("## Claims that fail"), text.index("## Claims the measurement does not")
    assert fails < text.index("[ntk: statement b](ntk.md#training-to-convergence)") < undecided
    assert undecided < text.index("[ntk: statement d](ntk.md#training-to-convergence)")
    rows = [line for line in text.splitlines() if line.startswith("| ntk |")]
    assert [r.rstrip(" |").rsplit("|", 1)[-1].strip() for r in rows] == ["holds", "**fails**",
                                                                          "*inconclusive*"]
    assert re.search(r"\| \[ntk\]\(ntk.md\) \| 1 holds, 1 inconclusive, 1 fails \|", text)
    # Rewritten only when its content changes.
    mtime = path.stat().st_mtime_ns
    time.sleep(0.01)
    landing.write(tmp_path)
    assert path.stat().st_mtime_ns == mtime
