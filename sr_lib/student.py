"""`python -m sr_lib student --out DIR`: the student versions of the notebooks, solutions removed.

Each exercise's solution sits in a cell marked as an nbgrader solution cell, between nbgrader's
`### BEGIN SOLUTION` / `### END SOLUTION`. We remove it with nbgrader's own `ClearSolutions`
preprocessor, giving each exercise its own stub, `raise NotImplementedError("exercise 1.1: ...")`, whose
text is the first line of the exercise function's docstring. nbgrader rather than otter-grader: our
markers and cell metadata are nbgrader's, so an instructor can also run `nbgrader generate_assignment`
on these very notebooks; otter needs its own assignment and question cells and test files, while our
checkers are plain functions in `sr_lib.exercises` that students call themselves.
"""
import re
from pathlib import Path

import nbformat

from .errors import UserError

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXERCISE = re.compile(r'"""(Exercise (\d+\.\d+): [^\n"]+)')


def exercise_stub(source: str) -> str:
    """The code that replaces a cell's solution: NotImplementedError naming the exercise."""
    match = EXERCISE.search(source)
    if match is None:
        raise UserError(f"a solution cell without an 'Exercise N.M: ...' docstring:\n{source[:200]}")
    text = match.group(1).rstrip(".").replace("Exercise", "exercise", 1).replace('"', "'").replace("\\", "\\\\")
    return f'raise NotImplementedError("{text} (write your code here, then run the check below)")'


def student_version(notebook: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """A copy of the notebook with every solution region replaced by its exercise's stub, and how many."""
    try:
        from nbgrader.preprocessors import ClearSolutions
    except ModuleNotFoundError as missing:
        raise UserError(f"student versions need nbgrader ({missing}): pip install -e \".[course]\"") from missing
    notebook = nbformat.from_dict(notebook)  # a copy
    count = 0
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and "BEGIN SOLUTION" in cell.source:
            clear = ClearSolutions(code_stub={"python": exercise_stub(cell.source)})
            clear.preprocess_cell(cell, {"language": "python"}, index)
            count += 1
    return notebook, count


def write_student_versions(out: str | Path, notebooks: Path = NOTEBOOKS) -> dict[str, int]:
    """Write every notebook's student version into `out`; returns {notebook name: exercises}."""
    from .files import atomic_write, writable_folder
    out = writable_folder(out)
    paths = sorted(Path(notebooks).glob("*.ipynb"))
    if not paths:
        raise UserError(f"no notebooks (*.ipynb) in {notebooks}")
    written = {}
    for path in paths:
        student, count = student_version(nbformat.read(path, as_version=4))
        atomic_write(out / path.name, lambda tmp, nb=student: nbformat.write(nb, tmp))
        written[path.name] = count
    return written
