"""Write the launch header of every notebook and of the README: Colab/Binder badges and the Colab install cell.

The public repository's URL comes from one place, `[project.urls] Repository` in pyproject.toml. Without it
the notebooks get the install cell only (on Colab it says what to do) and no badges: a badge that opens a
repository which does not exist is worse than none. The header cells are found by their tags, so running
this again replaces them instead of stacking copies.

    python scripts/notebook_headers.py          # rewrite notebooks/*.py, notebooks/*.ipynb and README.md
    python scripts/notebook_headers.py --check  # exit 1 and name every file that is out of date
"""
import argparse
import re
import sys
import tomllib
from pathlib import Path
from urllib.parse import quote

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
BADGE_TAG, SETUP_TAG = "launch-badges", "colab-setup"
README_START, README_END = "<!-- launch-badges -->", "<!-- /launch-badges -->"
BRANCH = "main"

SETUP_SOURCE = '''\
# Colab only: install sr_lib from the project's repository (does nothing anywhere else).
import importlib.util
import subprocess
import sys

REPOSITORY = "{repository}"  # written by scripts/notebook_headers.py from pyproject.toml
if "google.colab" in sys.modules and importlib.util.find_spec("sr_lib") is None:
    if not REPOSITORY:
        raise RuntimeError("sr_lib is not installed, and this copy of the notebook names no repository to install it "
                           "from: upload the project folder and run `pip install ./<folder>` in a cell, then rerun.")
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", f"sr-lib @ git+{{REPOSITORY}}"])'''


def repository(root: Path = ROOT) -> str | None:
    """The public repository URL from pyproject.toml, or None while the project names none."""
    urls = tomllib.loads((root / "pyproject.toml").read_text())["project"].get("urls", {})
    return urls.get("Repository")


def github_slug(url: str) -> str:
    """'owner/name' of a GitHub URL; Colab opens notebooks from GitHub only."""
    match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?/?", url)
    if not match:
        raise ValueError(f"repository URL {url!r} is not https://github.com/OWNER/NAME, which Colab needs")
    return match.group(1)


def badges(url: str, notebook: str) -> str:
    """Markdown for the 'Open in Colab' and 'Launch Binder' badges of one notebook path (relative to the root)."""
    slug = github_slug(url)
    colab = f"https://colab.research.google.com/github/{slug}/blob/{BRANCH}/{notebook}"
    binder = f"https://mybinder.org/v2/gh/{slug}/HEAD?labpath={quote(notebook, safe='')}"
    return (f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab}) "
            f"[![Launch Binder](https://mybinder.org/badge_logo.svg)]({binder})")


def header_cells(url: str | None, notebook: str) -> list:
    cells = [nbformat.v4.new_code_cell(SETUP_SOURCE.format(repository=url or ""), metadata={"tags": [SETUP_TAG]})]
    if url:
        cells.insert(0, nbformat.v4.new_markdown_cell(badges(url, notebook), metadata={"tags": [BADGE_TAG]}))
    return cells


def with_header(notebook, url: str | None, path: str):
    """The notebook with its header cells (re)written at the top."""
    body = [c for c in notebook.cells if not {BADGE_TAG, SETUP_TAG} & set(c.metadata.get("tags", []))]
    notebook.cells = header_cells(url, path) + body
    return notebook


def readme_block(url: str | None, notebooks: list[Path]) -> str:
    if not url:
        lines = ["Colab and Binder badges appear here once `pyproject.toml` names the project's public repository",
                 "(`[project.urls] Repository`; `python scripts/notebook_headers.py` writes them). Until then: run the",
                 "notebooks locally with the commands above, or on any JupyterLab with `environment.yml`."]
    else:
        lines = [f"- `{nb.stem}`: {badges(url, f'notebooks/{nb.name}')}" for nb in notebooks]
    return "\n".join([README_START, *lines, README_END])


def _source(cells) -> list[tuple[str, str, tuple]]:
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", []))) for c in cells]


def update(root: Path = ROOT, check: bool = False) -> list[str]:
    """Rewrite (or, with check, only compare) every notebook pair and the README; returns the stale files."""
    url = repository(root)
    scripts = sorted((root / "notebooks").glob("*.py"))
    stale = []
    for script in scripts:
        ipynb = script.with_suffix(".ipynb")
        relative = f"notebooks/{ipynb.name}"
        for path, fmt in ((script, "py:percent"), (ipynb, "ipynb")):  # each file on its own keeps its cell ids
            notebook = jupytext.read(path)
            before = _source(notebook.cells)
            if _source(with_header(notebook, url, relative).cells) != before:
                stale.append(str(path.relative_to(root)))
                if not check:
                    jupytext.write(notebook, path, fmt=fmt)
    readme = root / "README.md"
    text = readme.read_text()
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no {README_START} ... {README_END} block")
    new_text = pattern.sub(lambda _: readme_block(url, [s.with_suffix(".ipynb") for s in scripts]), text)
    if new_text != text:
        stale.append("README.md")
        if not check:
            readme.write_text(new_text)
    return stale


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    stale = update(check=args.check)
    verb = "out of date" if args.check else "rewritten"
    print(f"{verb}: {', '.join(stale)}" if stale else "notebook and README headers are up to date")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
