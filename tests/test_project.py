"""The project's own plumbing: dependency lists in step, notebooks paired and stripped, CI = README."""
import os
import re
import tomllib
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CONDA_NAMES = {"torch": "pytorch"}  # PyPI name -> conda-forge name where they differ


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_every_pyproject_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    wanted |= {_name(r) for extra in project["optional-dependencies"].values() for r in extra}
    wanted.discard(project["name"])  # an extra that pulls in another extra
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    have = set()
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            have |= {_name(r) for r in entry["pip"]}
        else:
            have.add(_name(entry))
    missing = sorted(n for n in wanted if CONDA_NAMES.get(n, n) not in have)
    assert not missing, f"in pyproject.toml but not in environment.yml: {missing}"


def test_binder_postbuild_installs_the_package_without_dependencies():
    post_build = ROOT / "postBuild"
    assert os.access(post_build, os.X_OK), "postBuild must be executable"
    assert "pip install --no-deps -e ." in post_build.read_text()


def _cells(notebook):
    return [(c.cell_type, c.source.strip()) for c in notebook.cells]


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_pair_in_sync_and_stripped(ipynb):
    script = ipynb.with_suffix(".py")
    assert script.exists(), f"{ipynb.name} has no paired py:percent script"
    notebook = nbformat.read(ipynb, as_version=4)
    assert _cells(notebook) == _cells(jupytext.read(script)), f"{ipynb.name} and {script.name} differ: jupytext --sync"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{ipynb.name} is committed with outputs"


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- test-command -->\s*```bash\n(.+?)\n```", readme, re.S)
    assert match, "README.md must mark its test command with <!-- test-command -->"
    assert match.group(1).strip() in (ROOT / ".ci/run").read_text()
