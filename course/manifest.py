"""The course's notebooks, in one place: what each is called, where it is, which exercises it holds.

Every part that needs to know which notebooks exist reads this list: ``course lab`` (which copies
to offer), ``course grade`` (which exercises a submission of that name is graded on), the notebook
build (``scripts/build_notebooks.py``), the tests and the benchmarks. A test checks that it agrees
with ``notebooks/`` (each source listed, each notebook's exercise module and progress id).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The repository (an editable install) or wherever the package was installed from.
REPOSITORY = Path(__file__).resolve().parents[1]
#: Where the shipped notebooks are in the repository.
NOTEBOOKS_DIR = REPOSITORY / "notebooks"
#: The package that holds one exercise module per notebook (``course.exercises.nb01``...).
EXERCISES_PACKAGE = "course.exercises"


@dataclass(frozen=True)
class Notebook:
    """One notebook of the course."""

    id: str  #: the short name learners type, e.g. ``"04"`` (``course lab --reset 04``)
    file: str  #: the shipped file, e.g. ``"04_zero_shot.ipynb"`` (its stem names submissions)
    exercises: str | None  #: its module in ``course.exercises``, e.g. ``"nb04"``
    progress_id: str  #: the id its ``ProgressTracker`` saves under

    @property
    def stem(self) -> str:
        """The file name without ``.ipynb``: what a submitted copy of it is called."""
        return Path(self.file).stem

    @property
    def source(self) -> str:
        """The jupytext source the ``.ipynb`` is built from."""
        return f"{self.stem}.py"

    def path(self, folder: Path | None = None) -> Path:
        """The ``.ipynb`` in ``folder`` (default: the repository's ``notebooks/``)."""
        return (NOTEBOOKS_DIR if folder is None else Path(folder)) / self.file


NOTEBOOKS: tuple[Notebook, ...] = (
    Notebook("01", "01_multimodality_intro.ipynb", "nb01", "01_multimodality_intro"),
    Notebook("02", "02_embeddings.ipynb", "nb02", "02_embeddings"),
    Notebook("03", "03_contrastive_loss_math.ipynb", "nb03", "03_contrastive_loss_math"),
    Notebook("04", "04_zero_shot.ipynb", "nb04", "04_zero_shot"),
    Notebook("05", "05_retrieval.ipynb", "nb05", "05_retrieval"),
    Notebook("06", "06_transfer.ipynb", "nb06", "06_transfer"),
    Notebook("07", "07_domain_adaptation.ipynb", "nb07", "07_domain_adaptation"),
)
#: Exercise modules that belong to no shipped notebook: the template every module copies.
OTHER_EXERCISE_MODULES = ("example",)


def find(name: str) -> Notebook | None:
    """The notebook called ``name`` by id (``"04"``), stem, file name or exercise module."""
    for notebook in NOTEBOOKS:
        if name in (notebook.id, notebook.stem, notebook.file, notebook.exercises):
            return notebook
    return None


def exercise_modules() -> list[str]:
    """Every module of ``course.exercises`` that declares exercises."""
    return [n.exercises for n in NOTEBOOKS if n.exercises] + list(OTHER_EXERCISE_MODULES)
