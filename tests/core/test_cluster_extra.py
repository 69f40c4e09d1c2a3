"""Ray is the bench's optional cluster engine: an extra that CI installs, never a dependency of
what runs on the wearable (edge/, models/)."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_edge_and_models_never_import_ray():
    offenders = [str(path.relative_to(ROOT)) for folder in ("edge", "models") for path in (ROOT / folder).rglob("*.py")
                 if "ray" in _imported_roots(path)]
    assert offenders == [], "the wearable install must not need Ray"


def test_running_the_loop_with_models_loads_no_ray():
    script = ("import sys\n"
              "import vigil360.edge.loop, vigil360.edge.run_cli, vigil360.edge.server\n"
              "import vigil360.models.sam2_tracker, vigil360.models.vlm.factory\n"
              "print('ray' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_ray_is_the_cluster_extra_and_make_installs_it():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(req.startswith("ray") for req in extras["cluster"])
    assert not any(req.startswith("ray") for name, reqs in extras.items() if name != "cluster" for req in reqs)
    install_lines = [line for line in (ROOT / "Makefile").read_text().splitlines() if "pip install" in line
                     and "-e " in line]
    assert install_lines and all("cluster" in line for line in install_lines), "CI must get the Ray engine"
