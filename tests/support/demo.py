"""The demo's stories, told once per test module, with a hostile environment around them."""

from __future__ import annotations

import io
import os
from collections.abc import Callable


def tell(story: Callable, monkeypatch) -> dict:
    """``story(out)`` (a ``fargate_audit.local.demo.run_*_story``) with a real endpoint and
    an admin profile set, which it must ignore: its text and the environment before and after."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # a real endpoint must be ignored
    monkeypatch.setenv("AWS_PROFILE", "production-admin")
    before = dict(os.environ)
    out = io.StringIO()
    story(out)
    after = dict(os.environ)
    return {"text": out.getvalue(), "before": before, "after": after}
