"""The project's own plumbing: dependency lists in step, notebooks paired and stripped, CI = README."""
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
_FIND_SPEC = importlib.util.find_spec
CONDA_NAMES = {"torch": "pytorch"}  # PyPI name -> conda-forge name where they differ


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_is_the_students_environment_from_pyproject():
    """Binder's environment: every dependency and the notebooks extra, and nothing only tests or
    instructors need (a smaller, faster Binder image)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = {_name(r) for r in project["dependencies"] + extras["notebooks"]}
    unwanted = {_name(r) for r in extras["test"] + extras["course"]} - wanted - {project["name"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    have = set()
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            have |= {_name(r) for r in entry["pip"]}
        else:
            have.add(_name(entry))
    missing = sorted(n for n in wanted if CONDA_NAMES.get(n, n) not in have)
    assert not missing, f"in pyproject.toml but not in environment.yml: {missing}"
    extra = sorted(n for n in unwanted if CONDA_NAMES.get(n, n) in have)
    assert not extra, f"test or course packages in the students' environment.yml: {extra}"


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


def test_every_notebook_and_script_is_paired_and_named_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    scripts = sorted(p.stem for p in (ROOT / "notebooks").glob("*.py"))
    assert scripts == [p.stem for p in NOTEBOOKS] and len(scripts) == 6
    missing = [stem for stem in scripts if f"notebooks/{stem}" not in readme]
    assert not missing, f"README's layout table does not name {missing}"


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- test-command -->\s*```bash\n(.+?)\n```", readme, re.S)
    assert match, "README.md must mark its test command with <!-- test-command -->"
    assert match.group(1).strip() in (ROOT / ".ci/run").read_text()


def _notebook_headers():
    spec = importlib.util.spec_from_file_location("notebook_headers", ROOT / "scripts/notebook_headers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebook_and_readme_launch_headers_are_up_to_date():
    stale = _notebook_headers().update(ROOT, check=True)
    assert not stale, f"out of date: {stale}; run python scripts/notebook_headers.py"


def _run_setup_cell(monkeypatch, repository: str, on_colab: bool, installed: bool) -> list:
    """Execute the Colab cell as written for `repository`, faking Colab and sr_lib's presence; returns pip calls."""
    headers = _notebook_headers()
    calls = []
    monkeypatch.setattr(subprocess, "check_call", calls.append)
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: _FIND_SPEC(name, *a) if installed or name != "sr_lib" else None)
    exec(compile(headers.SETUP_SOURCE.format(repository=repository), "colab-setup", "exec"), {})
    return calls


def test_colab_cell_installs_from_the_repository_only_on_colab_without_sr_lib(monkeypatch):
    url = "https://github.com/example-org/sr-flows-gans"
    calls = _run_setup_cell(monkeypatch, url, on_colab=True, installed=False)
    assert len(calls) == 1 and calls[0][-1] == f"sr-lib @ git+{url}" and calls[0][1:4] == ["-m", "pip", "install"]
    assert not _run_setup_cell(monkeypatch, url, on_colab=True, installed=True)
    monkeypatch.delitem(sys.modules, "google.colab")
    assert not _run_setup_cell(monkeypatch, url, on_colab=False, installed=False)


def test_colab_cell_without_a_repository_says_what_to_do(monkeypatch):
    with pytest.raises(RuntimeError, match="names no repository"):
        _run_setup_cell(monkeypatch, "", on_colab=True, installed=False)


def test_badges_open_this_notebook_on_colab_and_binder():
    headers = _notebook_headers()
    markdown = headers.badges("https://github.com/example-org/sr-flows-gans.git", "notebooks/05_comparison.ipynb")
    assert ("(https://colab.research.google.com/github/example-org/sr-flows-gans/blob/main/"
            "notebooks/05_comparison.ipynb)") in markdown
    assert "(https://mybinder.org/v2/gh/example-org/sr-flows-gans/HEAD?labpath=notebooks%2F05_comparison.ipynb)" in markdown
    with pytest.raises(ValueError, match="Colab needs"):
        headers.badges("https://gitlab.com/example-org/sr", "notebooks/05_comparison.ipynb")


def test_published_repository_has_badges_in_readme_and_notebooks():
    headers = _notebook_headers()
    url = headers.repository(ROOT)
    if not url:
        pytest.skip("pyproject.toml names no public repository ([project.urls] Repository), so there are no "
                    "Colab/Binder badges yet; add it and run python scripts/notebook_headers.py")
    assert headers.badges(url, "notebooks/05_comparison.ipynb") in (ROOT / "README.md").read_text()
    for ipynb in NOTEBOOKS:
        first = nbformat.read(ipynb, as_version=4).cells[0]
        assert first.source == headers.badges(url, f"notebooks/{ipynb.name}"), f"{ipynb.name} has no badges on top"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads peak memory from /proc")
def test_notebook_01_full_sweep_stays_under_1_gb_for_binder(tmp_path):
    """Binder gives a notebook about 2 GB; the brute-force Jacobian sweep of notebook 01 (full mode, not
    quick) must stay under 1 GB, torch included."""
    script = ("import re, runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__'); "
              "print(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1))")
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"MPLBACKEND": "Agg"}
    run = subprocess.run([sys.executable, "-c", script, str(ROOT / "notebooks" / "01_coupling_jacobian.py")],
                         capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "D =  3072" in run.stdout  # the full sweep ran
    peak_gib = int(run.stdout.split()[-1]) * 1024 / 2 ** 30
    assert peak_gib < 1.0, f"notebook 01 peaked at {peak_gib:.2f} GiB"
