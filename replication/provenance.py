"""What a report is built from, and whether the report on disk still matches it.

A report's inputs are the experiment's module, every module of this package it
imports (followed transitively, read from the source without running it), the
command line that runs it, and the lock file of package versions. Their
digest is stored in the report's JSON sidecar; ``make`` reruns an experiment
only when the digest of the inputs on disk differs from the stored one, or
the preset differs. Content, not modification times, decides: a fresh clone
of a commit whose reports were built from its own code has nothing to do.

    python -m replication.provenance fresh EXPERIMENT [--preset P] [--out DIR]

exits 0 when ``DIR/EXPERIMENT.md`` is up to date and 1 when it must be rebuilt.
Standard library only, so the check costs a fraction of a second.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import sys
from pathlib import Path

PACKAGE = "replication"
ROOT = Path(__file__).resolve().parent.parent
LOCK = "requirements.lock"
RUNNER = f"{PACKAGE}.cli"


def _module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, name: str, top_level_only: bool = False) -> set[str]:
    """Modules of this package that ``path`` (module ``name``) imports.

    Imports inside functions count too (an experiment may import lazily),
    except with ``top_level_only``: the runner imports the benchmark only
    inside the command that runs it.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in (tree.body if top_level_only else ast.walk(tree)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            # ``from package import submodule`` imports the submodule too.
            found.update(f"{module}.{a.name}" for a in node.names)
    return {m for m in found if (m == PACKAGE or m.startswith(PACKAGE + ".")) and _module_file(m)}


def inputs(experiment: str) -> list[str]:
    """Paths, relative to the repository, of everything ``experiment``'s report is built from."""
    todo = [f"{PACKAGE}.experiments.{experiment}", RUNNER]
    if _module_file(todo[0]) is None:
        raise ValueError(f"no module for experiment {experiment!r}")
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        # Importing a module runs its parent packages' __init__ first.
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += sorted(_imports(_module_file(name), name, top_level_only=name == RUNNER))
    files = {_module_file(m).relative_to(ROOT).as_posix() for m in seen}
    return sorted(files | {LOCK})


def digest(experiment: str) -> str:
    """SHA-256 over the inputs' paths and contents."""
    h = hashlib.sha256()
    for rel in inputs(experiment):
        data = (ROOT / rel).read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def fresh(experiment: str, preset: str, out: Path) -> bool:
    """Whether ``out/<experiment>.md`` was built by this preset from the inputs as they are now."""
    try:
        side = json.loads((out / f"{experiment}.json").read_text())
    except (OSError, ValueError):
        return False
    if not (out / f"{experiment}.md").is_file():
        return False
    return side.get("preset") == preset and side.get("inputs_digest") == digest(experiment)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {PACKAGE}.provenance")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("fresh", help="exit 0 if the report is up to date, 1 if not")
    check.add_argument("experiment")
    check.add_argument("--preset", default="quick")
    check.add_argument("--out", default="reports", type=Path)
    show = sub.add_parser("inputs", help="list the files a report is built from")
    show.add_argument("experiment")
    args = parser.parse_args(argv)
    try:
        if args.command == "inputs":
            print("\n".join(inputs(args.experiment)))
            return 0
        return 0 if fresh(args.experiment, args.preset, args.out) else 1
    except ValueError as e:
        print(f"{PACKAGE}.provenance: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
