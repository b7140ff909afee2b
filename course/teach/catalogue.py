"""The exercise catalogue: every exercise of the course by id, and the exercises of a notebook.

The one place the platform turns an exercise id into the exercise declared in the content package
(``course.exercises.<module>``, the module named by the course manifest). ``course grade`` builds
one :class:`Catalogue` per batch and looks each exercise up once; ``get_exercise`` and
``exercises_in`` (re-exported by ``course.exercises``) are the same lookups for a notebook.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING

from course import manifest

if TYPE_CHECKING:
    from course.teach.exercises import Exercise


def _module(module_name: str, exercise_id: str | None = None) -> ModuleType:
    try:
        return import_module(f"{manifest.EXERCISES_PACKAGE}.{module_name}")
    except ModuleNotFoundError as error:
        what = f" (for exercise {exercise_id!r})" if exercise_id else ""
        raise KeyError(f"no exercise module {manifest.EXERCISES_PACKAGE}.{module_name}"
                       f"{what}") from error


def get_exercise(exercise_id: str) -> Exercise:
    """The exercise with id ``"<module>.<name>"`` (e.g. ``"example.q1"``).

    Raises:
        ValueError: the id is not of that form.
        KeyError: no such module or exercise.
    """
    from course.teach.exercises import Exercise

    module_name, _, name = str(exercise_id).rpartition(".")
    if not module_name or not name or not module_name.isidentifier() or module_name == "keys":
        raise ValueError(f"exercise id {exercise_id!r} is not of the form '<module>.<name>'")
    exercise = getattr(_module(module_name, exercise_id), name, None)
    if not isinstance(exercise, Exercise) or exercise.id != exercise_id:
        raise KeyError(f"{manifest.EXERCISES_PACKAGE}.{module_name} has no exercise "
                       f"{exercise_id!r}")
    return exercise


def exercises_in(module_name: str) -> list[Exercise]:
    """Every exercise declared in ``course.exercises.<module_name>``, in definition order."""
    from course.teach.exercises import Exercise

    return [value for value in vars(_module(module_name)).values() if isinstance(value, Exercise)]


class Catalogue:
    """Exercises looked up once: ``get`` caches, so a batch of 1,400 submissions imports and
    finds each exercise (and builds its key's fixed cases) a single time."""

    def __init__(self) -> None:
        self._found: dict[str, Exercise | Exception] = {}

    def get(self, exercise_id: str) -> Exercise:
        """The exercise (raises ``KeyError``/``ValueError`` as :func:`get_exercise`, each time)."""
        if exercise_id not in self._found:
            try:
                self._found[exercise_id] = get_exercise(exercise_id)
            except (KeyError, ValueError) as error:
                self._found[exercise_id] = error
        found = self._found[exercise_id]
        if isinstance(found, Exception):
            raise found
        return found

    def known(self, exercise_id: str) -> bool:
        """Whether the id names an exercise of the course."""
        try:
            self.get(exercise_id)
        except (KeyError, ValueError):
            return False
        return True

    def points(self, exercise_id: str) -> float:
        """The exercise's points (0 for an id the course does not have)."""
        try:
            return float(self.get(exercise_id).points)
        except (KeyError, ValueError):
            return 0.0

    def of_notebook(self, name: str) -> list[str] | None:
        """The exercise ids of the course's notebook called ``name`` (stem, file or id), in
        order; None when the course has no such notebook."""
        notebook = manifest.find(name)
        if notebook is None or notebook.file != f"{name}.ipynb" and notebook.stem != name:
            return None
        if notebook.exercises is None:
            return []
        return [exercise.id for exercise in exercises_in(notebook.exercises)]
