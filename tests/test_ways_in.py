"""The four ways readers use the book: rendered HTML, JupyterLab, papermill batches, nbval."""
import ast
import json
import re
import tomllib
from pathlib import Path

import pytest

from polyplib.book.runner import NOTEBOOKS

REPO = Path(__file__).resolve().parents[1]
PAPERMILL_NAMES = ("profile", "data_root")  # what `papermill NB out.ipynb -p profile ... -p data_root DIR` sets


def parameter_names(notebook: Path) -> set[str]:
    """Names assigned in the cell tagged `parameters` (what papermill overrides)."""
    cells = [c for c in json.loads(notebook.read_text())["cells"]
             if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{notebook.name}: expected one cell tagged 'parameters', found {len(cells)}"
    tree = ast.parse("".join(cells[0]["source"]))
    return {target.id for node in tree.body if isinstance(node, ast.Assign) for target in node.targets
            if isinstance(target, ast.Name)}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_notebook_takes_the_papermill_parameters(name):
    names = parameter_names(REPO / "notebooks" / f"{name}.ipynb")
    assert set(PAPERMILL_NAMES) <= names, f"{name}: parameters cell lacks {set(PAPERMILL_NAMES) - names}"


def test_jupyterlab_is_an_extra_of_the_project_and_the_conda_environment():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("jupyterlab") for dep in extras["lab"])
    assert not any(dep.startswith("jupyterlab") for dep in extras["test"])  # `make test` never needs it
    assert re.search(r"-e \.\[[^\]]*\blab\b", (REPO / "environment.yml").read_text())
    assert re.search(r"^lab:.*\n(\t.*\n)*\t.*-m jupyterlab notebooks", (REPO / "Makefile").read_text(), re.M)


def test_readme_shows_each_way_in():
    readme = (REPO / "README.md").read_text()
    for line in ("make book", "make lab", "papermill notebooks/04_cross_dataset.ipynb out.ipynb -p profile lite "
                 "-p data_root DIR", "pytest notebooks --nbval"):
        assert line in readme, line
