"""The agent's wheel ships exactly what the agent imports (deploy/agent/pyproject.toml)."""

from __future__ import annotations

import shutil
from pathlib import Path

from deploy.agent.build import REPO, included_files, missing_modules

NATIONAL_CODE = ("processors/", "sinks/", "soc/", "deploy/", "producers/simulator/",
                 "runtime/elasticsearch.py", "runtime/topics.py", "vigie/cli/platform.py",
                 "vigie/cli/soc.py")


def test_every_module_the_agent_imports_is_shipped() -> None:
    assert missing_modules() == {}


def test_no_national_code_is_shipped() -> None:
    shipped = [str(path) for path in included_files()]
    assert "producers/agent/run.py" in shipped and "vigie/cli/agent.py" in shipped
    assert not [p for p in shipped if p.startswith(NATIONAL_CODE)]


def test_a_new_import_the_list_forgets_is_caught(tmp_path: Path) -> None:
    for top in ("producers", "runtime", "schemas", "vigie"):
        shutil.copytree(REPO / top, tmp_path / top,
                        ignore=shutil.ignore_patterns("__pycache__"))
    status = tmp_path / "producers" / "agent" / "status.py"
    status.write_text(status.read_text() + "\nfrom runtime.backoff import Backoff  # noqa\n")
    assert set(missing_modules(tmp_path)) == {"runtime.backoff"}
