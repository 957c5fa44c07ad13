"""Student versions: solutions removed by nbgrader, each exercise a clear stop, nothing crashing before it."""

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from sr_lib.cli import main
from sr_lib.student import NOTEBOOKS, student_version, write_student_versions

INSTRUCTOR = sorted(NOTEBOOKS.glob("*.ipynb"))


@pytest.fixture(scope="module")
def students(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    return out, write_student_versions(out)


def test_every_notebook_has_at_least_two_exercises_in_nbgrader_solution_cells():
    for path in INSTRUCTOR:
        notebook = nbformat.read(path, as_version=4)
        cells = [cell for cell in notebook.cells if "### BEGIN SOLUTION" in cell.source]
        assert len(cells) >= 2, f"{path.name} has {len(cells)} exercises"
        for cell in cells:  # what nbgrader's generate_assignment needs to accept the notebook as it is
            meta = cell.metadata.get("nbgrader", {})
            assert meta.get("solution") is True and meta.get("grade") is False and meta.get("grade_id"), path.name


def test_student_versions_replace_every_solution_by_its_exercise(students, capsys):
    out, written = students
    assert sorted(written) == [p.name for p in INSTRUCTOR]
    for path in INSTRUCTOR:
        teacher = nbformat.read(path, as_version=4)
        student = nbformat.read(out / path.name, as_version=4)
        assert len(student.cells) == len(teacher.cells)
        sources = "\n".join(cell.source for cell in student.cells)
        assert "BEGIN SOLUTION" not in sources and "END SOLUTION" not in sources
        assert sources.count('raise NotImplementedError("exercise ') == written[path.name] >= 2
        for cell_t, cell_s in zip(teacher.cells, student.cells):  # only solution regions change
            if "BEGIN SOLUTION" not in cell_t.source:
                assert cell_s.source == cell_t.source


def test_student_command_line(tmp_path, capsys):
    assert main(["student", "--out", str(tmp_path / "s")]) == 0
    assert "exercises)" in capsys.readouterr().out
    (tmp_path / "file").write_text("")
    assert main(["student", "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_a_solution_cell_without_an_exercise_docstring_is_refused():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n",
        metadata={"nbgrader": {"solution": True, "grade": False, "grade_id": "x", "locked": False,
                               "schema_version": 3}})])
    with pytest.raises(ValueError, match="without an 'Exercise N.M: ...' docstring"):
        student_version(notebook)


@pytest.mark.parametrize("name", [p.name for p in INSTRUCTOR])
def test_student_notebook_runs_to_its_first_exercise_and_stops_there(students, name, monkeypatch):
    out, _ = students
    monkeypatch.setenv("CI", "true")  # quick mode, inherited by the kernel
    notebook = nbformat.read(out / name, as_version=4)
    first = next(i for i, cell in enumerate(notebook.cells) if 'raise NotImplementedError("exercise ' in cell.source)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    with pytest.raises(CellExecutionError) as caught:
        client.execute()
    assert caught.value.ename == "NotImplementedError" and "exercise " in caught.value.evalue, caught.value
    failed = [i for i, cell in enumerate(notebook.cells)
              if any(o.get("output_type") == "error" for o in cell.get("outputs", []))]
    assert failed == [first], f"stopped in cell {failed}, the first exercise is cell {first}"
