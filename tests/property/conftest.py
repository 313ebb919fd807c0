"""Hypothesis settings of the property suite.

Profiles (pick one with HYPOTHESIS_PROFILE; default ``ci`` when the CI variable is set,
``dev`` otherwise):

- ``dev``: 200 examples per property, no deadline (two shared cores make timings noisy);
  failing examples are remembered under .pytest_cache/ (already git-ignored) and replayed
  first on the next run.
- ``ci``: the same budget, derandomised (a fixed seed per test), so a CI run is
  reproducible and a red build replays exactly; no example database.
- ``thorough``: 5,000 examples, for a deliberate local hunt after touching the algebra.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

_DATABASE = DirectoryBasedExampleDatabase(
    Path(__file__).resolve().parents[2] / ".pytest_cache" / "hypothesis"
)

settings.register_profile("dev", max_examples=200, deadline=None, database=_DATABASE)
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True, database=None)
settings.register_profile("thorough", max_examples=5000, deadline=None, database=_DATABASE)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))
