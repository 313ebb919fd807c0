"""Build hook: the wheel carries the SAM application beside the library.

``fargate-audit invoke`` and ``demo`` read ``template.yaml`` (function environments, the
table definition) and run ``functions/<name>/app.py``. In a checkout they are read where
they are; a wheel gets them copied at build time into ``fargate_audit/_sam/`` (the same
relative layout), so an installed CLI needs no checkout. Nothing is committed twice: the
copy exists only in the build. Everything else is declared in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SAM_FILES = ["template.yaml", *sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("functions/*/app.py"))]


class BuildPyWithSam(build_py):
    def run(self):
        if not self.editable_mode:
            # pip builds a checkout in place: build/lib keeps what an earlier build put there
            # (a module since moved or deleted, a removed function's app.py) and the wheel
            # would ship it. Start from an empty package directory every time.
            shutil.rmtree(Path(self.build_lib) / "fargate_audit", ignore_errors=True)
        super().run()
        if self.editable_mode:  # an editable install reads the checkout's own files
            return
        target = Path(self.build_lib) / "fargate_audit" / "_sam"
        for name in SAM_FILES:
            source = ROOT / name
            if not source.is_file():  # building from an sdist that lacks them is a broken sdist
                raise SystemExit(f"setup.py: {name} missing; cannot build the wheel")
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            self.copy_file(str(source), str(target / name), preserve_mode=False)


setup(cmdclass={"build_py": BuildPyWithSam})
