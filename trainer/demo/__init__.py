"""Synthetic Book-Crossing and Open Library files with planted structure and planted dirt.

Why: the trainer, the server and the tests need realistic inputs on machines that have no
network and no copy of the real data set.  ``generate`` writes the real Book-Crossing file
format (latin-1, ``;``-separated, every field quoted, ``NULL`` ages) with the real data set's
kinds of dirt, subjects in the Open Library dump format, and plants structure a good model can
recover: skewed subjects, authors, series read together, user tastes and Zipf popularity.
``demo_truth.json`` records the planted answer for tests only; the trainer never reads it.

Same scale and seed give byte-identical files: every random draw comes from one seeded numpy
generator per stage, and nothing depends on hashing, dict order of sets, time or locale.

The package is split by what each module makes, in stage order:

- ``scales``: the named sizes (``Scale``, ``SCALES``).
- ``words``, ``names``: word lists, and distinct names and titles built from them.
- ``sampling``, ``isbns``: shared seeded sampling helpers; valid, unique ISBN-10s.
- ``catalogue``, ``users``, ``ratings``: the clean planted structure, as numpy arrays.
- ``dirt``: the forms of the real files' faults.
- ``writers``, ``bx_files``, ``ol_dumps``: file conventions, the BX CSVs, the OL dumps.
- ``truth``: demo_truth.json.
- ``run``: ``generate`` and ``DemoSummary``.

Only the names below are the package's interface; the underscored names the modules share
are internal to it and may change with the generator.
"""

from __future__ import annotations

from trainer.demo.run import DemoSummary, generate
from trainer.demo.scales import SCALES, Scale

__all__ = ["SCALES", "DemoSummary", "Scale", "generate"]
