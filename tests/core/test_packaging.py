"""The distribution maps the repo's folders under one namespace and ships every subpackage."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_subpackage_is_listed_for_the_wheel():
    config = _pyproject()["tool"]["setuptools"]
    listed = set(config["packages"])
    for name, folder in config["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            dotted = ".".join([name, *relative.parts]) if relative.parts else name
            assert dotted in listed, f"{dotted} ({init.parent}) is missing from [tool.setuptools] packages"


def test_no_generic_top_level_names_are_installed():
    mapping = _pyproject()["tool"]["setuptools"]["package-dir"]
    assert all(name == "vigil360" or name.startswith("vigil360.") for name in mapping)


def test_cli_help_lists_the_subcommands():
    out = subprocess.run([sys.executable, "-m", "vigil360", "--help"], capture_output=True, text=True, check=True)
    for command in ("export", "models", "bench"):
        assert command in out.stdout


def test_unknown_command_is_a_usage_error():
    out = subprocess.run([sys.executable, "-m", "vigil360", "nonsense"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "No such command" in out.stderr
