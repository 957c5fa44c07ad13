"""Run notebooks from a fresh kernel outside CI's fast mode and print each code cell's wall time.

The runtimes stated at the top of each notebook and in the README come from this:

    python scripts/time_notebooks.py                     # every notebook
    python scripts/time_notebooks.py notebooks/05_comparison.ipynb
Nothing is written back; the committed notebooks stay stripped.
"""
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def cell_seconds(cell) -> float:
    timing = cell.metadata.get("execution", {})
    start, end = (datetime.fromisoformat(timing[k].replace("Z", "+00:00"))
                  for k in ("iopub.execute_input", "shell.execute_reply"))
    return (end - start).total_seconds()


def main(paths: list[str]) -> None:
    os.environ.pop("CI", None)  # the full notebooks, as a reader runs them
    os.environ.pop("MPLBACKEND", None)
    for path in [Path(p) for p in paths] or sorted((ROOT / "notebooks").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        started = time.perf_counter()
        NotebookClient(notebook, timeout=3600, record_timing=True,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        print(f"{path.name}: {time.perf_counter() - started:.1f} s including kernel start")
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type == "code" and cell.source.strip():
                first_line = cell.source.strip().splitlines()[0][:70]
                print(f"  cell {index:2d} {cell_seconds(cell):6.1f} s  {first_line}")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
