"""The teaching platform: exercises with feedback, grading, the kernel environment, progress.

One module per job:

* ``checks``: outcomes, feedback, comparators and the common mistakes they name;
* ``plaindata``: answers and hidden inputs as plain data (JSON, never pickle);
* ``exercises``: the exercise classes learners call (``check``, ``hint``, ``solution``, ``use``);
* ``catalogue``: exercises by id and the exercises of a notebook (the course manifest,
  ``course/manifest.py``, says which module each notebook's exercises are in);
* ``keys``: answer keys (reference solutions, hidden cases, mistakes), kept out of grading kernels;
* ``protocol``: running a learner's answer on hidden inputs (kernel side) next to judging the
  answers it produced (grader side);
* ``markup``: the notebook cell markup of exercises (stub and check cells);
* ``kernelenv``: the one environment every notebook kernel we start runs in;
* ``sandbox`` and ``worker``: an isolated run of one submitted notebook;
* ``replay``: a submission's functions run on the hidden inputs outside its kernel, where the
  course's own implementations of the exercise are guards (the only pickles: student code to
  student-side processes, in the sandbox; the grader reads plain data only);
* ``answer_cell``: the ``%%course_answer`` magic of nbgrader exports (value answers);
* ``grading``: ``course grade``, a package: finding submissions, one graded run (``runner``),
  the local and Dask runners, the journal, the reports and gradebook exports, the batch;
* ``progress``: the learner's checklist (store, widget, command).

Nothing here is imported by ``import course``: notebooks import what they use.
"""
