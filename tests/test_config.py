"""Nested configuration: overrides by path, shorthand flags that mean one thing everywhere."""
import dataclasses

import pytest

from replication import config as C
from replication.cli import main


@dataclasses.dataclass(frozen=True)
class Inner:
    widths: tuple[int, ...] = (16, 64)
    seeds: int = 4
    fraction: float = 0.5
    cap: int | None = None
    name: str = "relu"


@dataclasses.dataclass(frozen=True)
class Outer:
    seed: int = 0
    first: Inner = Inner()
    second: Inner = Inner(seeds=2)


def test_paths_name_every_leaf_setting():
    assert set(C.paths(Outer())) == {"seed", *(f"{s}.{f}" for s in ("first", "second")
                                               for f in ("widths", "seeds", "fraction", "cap", "name"))}


@pytest.mark.parametrize("assignment, path, value", [
    ("first.widths=8,32,128", "first.widths", (8, 32, 128)),
    ("second.seeds=9", "second.seeds", 9),
    ("first.fraction=0.25", "first.fraction", 0.25),
    ("first.cap=100", "first.cap", 100),
    ("first.cap=none", "first.cap", None),
    ("second.name=erf", "second.name", "erf"),
    ("seed=3", "seed", 3),
])
def test_an_override_sets_one_setting_by_the_type_it_has(assignment, path, value):
    out = C.override(Outer(), assignment)
    assert C.paths(out)[path] == value
    changed = {p for p, v in C.paths(out).items() if v != C.paths(Outer())[p]}
    assert changed <= {path}


@pytest.mark.parametrize("assignment, says", [
    ("third.seeds=1", "no setting 'third.seeds'"),
    ("first=1", "no setting 'first'"),
    ("first.seeds=two", "first.seeds='two' is not a int"),
    ("first.seeds", "--set takes STUDY.SETTING=VALUE"),
])
def test_a_bad_override_is_one_clear_error(assignment, says):
    with pytest.raises(C.ConfigError, match=says):
        C.override(Outer(), assignment)


def test_a_setting_named_once_is_set_in_every_study():
    out, found = C.with_everywhere(Outer(), "seeds", 7)
    assert found == ["first.seeds", "second.seeds"] and out.first.seeds == out.second.seeds == 7
    out, found = C.with_everywhere(Outer(), "widths", 32)   # a scalar for a ladder: a ladder of one
    assert out.first.widths == out.second.widths == (32,)
    assert C.with_everywhere(Outer(), "depths", (1,))[1] == []


def test_the_command_line_refuses_an_unknown_setting_in_one_line(tmp_path, capsys):
    assert main(["run", "ntk", "--set", "nope.seeds=2", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no setting 'nope.seeds'" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_every_experiment_config_is_hashable_and_its_flags_exist():
    from replication.cli import FLAGS
    from replication.experiments import EXPERIMENTS, load

    for name in EXPERIMENTS:
        module = load(name)
        for preset in module.PRESETS.values():
            hash(preset)
            assert all(dataclasses.is_dataclass(getattr(preset, f.name)) or f.name == "seed"
                       for f in dataclasses.fields(preset)), name
        # Every experiment has at least one width ladder and seed count for the flags to set.
        settings = {p.rpartition(".")[2] for p in C.paths(module.PRESETS["quick"])}
        assert {FLAGS["widths"], FLAGS["seeds"]} <= settings, name
