"""What a task's workload is named by: its group, in the form interface.md gives it
(pure; imported by the posture builder and the event parser alike)."""

from __future__ import annotations

from typing import Any


def workload_group(group: Any, task_definition_arn: Any) -> Any:
    """The group a task's workload is named by (interface.md: ``service:NAME`` for a
    service's task, ``family:NAME`` for a standalone one): the task's own ``group`` when it
    is one of those; for a standalone task run with a custom group (RunTask ``group``, any
    name) or none, ``family:`` and its task definition's family, so that findings, keys and
    the report's ``group`` keep that form. Unchanged when the family cannot be read."""
    if isinstance(group, str) and group.startswith(("service:", "family:")):
        return group
    if isinstance(task_definition_arn, str) and ":task-definition/" in task_definition_arn:
        family = task_definition_arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]
        if family:
            return f"family:{family}"
    return group
