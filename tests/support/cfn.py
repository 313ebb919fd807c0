"""Evaluate a template's Conditions offline: which resources a stack with given parameters
(and pseudo parameters: AWS::AccountId, AWS::Region, ...) creates.

Enough CloudFormation for the conditions fargate-audit's templates write: ``Ref`` (a
parameter, its default when not given, or a pseudo parameter), ``Fn::Equals``, ``Fn::Not``,
``Fn::And``, ``Fn::Or``, ``Condition``, and inside them ``Fn::Join``, ``Fn::Select`` and
``Fn::Split``. A CommaDelimitedList parameter is a list (``""`` -> ``[""]``, as in
CloudFormation). Anything else raises, so a condition this cannot read fails loudly.
"""

from __future__ import annotations

from typing import Any

PSEUDO = {"AWS::Partition": "aws", "AWS::StackName": "fargate-audit", "AWS::URLSuffix": "amazonaws.com"}


class Stack:
    """A template with parameter values: ``condition(name)``, ``creates(logical_id)``."""

    def __init__(self, template: dict, params: dict[str, Any] | None = None, **pseudo: str) -> None:
        self.template = template
        self.pseudo = PSEUDO | {f"AWS::{key}": value for key, value in pseudo.items()}
        self.params: dict[str, Any] = {}
        for name, spec in template.get("Parameters", {}).items():
            given = (params or {}).get(name, spec.get("Default"))
            if given is None:
                continue
            if spec["Type"] == "CommaDelimitedList" and isinstance(given, str):
                given = given.split(",")
            self.params[name] = given
        unknown = set(params or {}) - set(template.get("Parameters", {}))
        if unknown:
            raise KeyError(f"no such parameters: {sorted(unknown)}")

    def value(self, node: Any) -> Any:
        if isinstance(node, (str, int, float, bool)):
            return node
        if isinstance(node, list):
            return [self.value(item) for item in node]
        (function, args), *rest = node.items()
        if rest:
            raise ValueError(f"not an intrinsic function: {node!r}")
        if function == "Ref":
            if args in self.params:
                return self.params[args]
            if args in self.pseudo:
                return self.pseudo[args]
            raise KeyError(f"Ref {args}: no value (give the parameter or pseudo parameter)")
        if function == "Condition":
            return self.condition(args)
        if function == "Fn::Equals":
            left, right = (self.value(arg) for arg in args)
            return left == right
        if function == "Fn::Not":
            (arg,) = args
            return not self.value(arg)
        if function == "Fn::And":
            return all(self.value(arg) for arg in args)
        if function == "Fn::Or":
            return any(self.value(arg) for arg in args)
        if function == "Fn::Join":
            separator, items = args
            return separator.join(self.value(items))
        if function == "Fn::Select":
            index, items = args
            return self.value(items)[int(self.value(index))]
        if function == "Fn::Split":
            separator, text = args
            return self.value(text).split(separator)
        raise ValueError(f"{function} is not evaluated here")

    def condition(self, name: str) -> bool:
        return bool(self.value(self.template["Conditions"][name]))

    def creates(self, logical_id: str) -> bool:
        condition = self.template["Resources"][logical_id].get("Condition")
        return condition is None or self.condition(condition)

    def resources(self) -> set[str]:
        """Logical ids of the resources this stack creates."""
        return {logical_id for logical_id in self.template["Resources"] if self.creates(logical_id)}
