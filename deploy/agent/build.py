"""``python -m deploy.agent.build [--out dist]``: the ``vigie-agent`` wheel, for hospitals.

The repository is one source tree for the agent and the national platform; a hospital server
must get the agent only (no Faust, Elasticsearch, matplotlib, pySigma, nor the code that
needs them). So the wheel is built from a *staging copy* holding exactly the files that
``deploy/agent/pyproject.toml`` lists under ``[tool.vigie-agent] include``, with that
``pyproject.toml`` (its own name, dependencies and ``vigie`` entry point) and
``docs/agent.md`` as its README. :func:`missing_modules` says which modules the agent imports
that the list forgets (a unit test keeps it empty), so a new import cannot ship a wheel
that fails on the hospital's server.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PROJECT = HERE / "pyproject.toml"
#: Top-level packages of this repository (imports of anything else are dependencies).
OURS = ("vigie", "deploy", "soc", "producers", "processors", "sinks", "runtime", "schemas")


def declaration() -> dict[str, Any]:
    """``[tool.vigie-agent]`` of ``deploy/agent/pyproject.toml``."""
    with PROJECT.open("rb") as fh:
        table: dict[str, Any] = tomllib.load(fh)["tool"]["vigie-agent"]
    return table


def included_files(repo: Path = REPO) -> list[Path]:
    """The repository files the wheel ships (relative paths), folders expanded."""
    files: set[Path] = set()
    for entry in declaration()["include"]:
        path = repo / entry
        if path.is_dir():
            files.update(p.relative_to(repo) for p in path.rglob("*.py")
                         if "__pycache__" not in p.parts)
        elif path.is_file():
            files.add(Path(entry))
        else:
            raise FileNotFoundError(f"{PROJECT}: included {entry} does not exist")
    return sorted(files)


def module_name(path: Path) -> str:
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _module_file(name: str, repo: Path) -> Path | None:
    base = repo.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate.relative_to(repo)
    return None


def _imports(path: Path, name: str) -> Iterable[str]:
    """Every module ``path`` (module ``name``) imports, lazy imports included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_closure(roots: Iterable[str], repo: Path = REPO,
                   whole: Iterable[str] = ()) -> dict[str, Path]:
    """Module name → file of every module of this repository that ``roots`` import,
    directly or not, with the packages that contain them; the packages named in ``whole``
    count with every module they hold."""
    whole = set(whole)
    found: dict[str, Path] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in found or name.partition(".")[0] not in OURS:
            continue
        path = _module_file(name, repo)
        if path is None:  # ``from pkg import function``: not a module
            continue
        found[name] = path
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        if path.name == "__init__.py" and name in whole:
            todo.extend(module_name(p.relative_to(repo))
                        for p in (repo / path.parent).rglob("*.py")
                        if "__pycache__" not in p.parts)
        todo.extend(_imports(repo / path, name))
    return found


def missing_modules(repo: Path = REPO) -> dict[str, Path]:
    """Modules the agent imports that ``include`` does not ship."""
    shipped = set(included_files(repo))
    folders = [module_name(Path(entry) / "__init__.py") for entry in declaration()["include"]
               if (repo / entry).is_dir()]
    closure = import_closure([*declaration()["roots"], *folders], repo, whole=folders)
    return {name: path for name, path in closure.items() if path not in shipped}


def stage(destination: Path, repo: Path = REPO) -> Path:
    """The agent's source tree at ``destination``, ready for ``pip wheel``."""
    missing = missing_modules(repo)
    if missing:
        raise SystemExit(f"deploy/agent/pyproject.toml: the agent imports "
                         f"{', '.join(sorted(missing))}, which [tool.vigie-agent] include "
                         "does not list")
    for relative in included_files(repo):
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / relative, target)
    shutil.copy2(PROJECT, destination / "pyproject.toml")
    shutil.copy2(repo / "docs" / "agent.md", destination / "README.md")
    return destination


def build_wheel(out: Path, *, python: str = sys.executable, repo: Path = REPO) -> Path:
    """Build the ``vigie-agent`` wheel into ``out``; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vigie-agent-") as tmp:
        source = stage(Path(tmp) / "src", repo)
        before = set(out.glob("vigie_agent-*.whl"))
        subprocess.run([python, "-m", "pip", "wheel", "--quiet", "--no-deps",
                        "--wheel-dir", str(out), str(source)], check=True)
    built = sorted(set(out.glob("vigie_agent-*.whl")) - before
                   or out.glob("vigie_agent-*.whl"), key=lambda p: p.stat().st_mtime)
    return built[-1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist",
                        help="folder for the wheel (default: dist/)")
    args = parser.parse_args(argv)
    print(build_wheel(args.out))


if __name__ == "__main__":
    main()
