"""The one DynamoDB access layer: the table's name and client, the item codec, and the
few request shapes the stores use (docs/design.md section 5).

Every store (task history: ``stores.record``; finding state and outbox:
``findings.state``; egress discovery: ``stores.discovery``) reads and writes through a
:class:`Table`: a strongly consistent ``get``, a paginated ``query`` (with an optional
limit), a conditional ``put`` that answers False when its condition failed, a
``transact`` whose cancellation carries its reasons (:class:`Cancelled`: each store
decides what a conflict means to it), a ``batch_write`` that retries UnprocessedItems
with jittered backoff, then raises :class:`RecordError` (nothing is dropped silently),
and a ``batch_get`` that retries UnprocessedKeys the same way.

Items are plain dicts of str / int / bool values (None: absent); JSON goes in strings.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from fargate_audit.core.errors import FargateAuditError

GSI1 = "gsi1"
MAX_TRANSACT_ACTIONS = 100  # TransactWriteItems limit
BATCH_WRITE_MAX = 25  # BatchWriteItem limit
BATCH_GET_MAX = 100  # BatchGetItem limit
MAX_ITEM_BYTES = 380 * 1024  # DynamoDB's limit is 400 KB; keep a margin for attribute names


class RecordError(FargateAuditError):
    """The table could not be written or read as planned (concurrent writers past the retry
    bound, unprocessed batch items or keys past the retry bound, an item too large)."""


class ItemTooLarge(RecordError):
    """One task's item exceeds DynamoDB's item size: no retry will record it."""


class Cancelled(Exception):
    """A TransactWriteItems call was cancelled; ``reasons``: the cancellation reason codes,
    one per action (``None`` / ``"None"`` where that action was fine)."""

    def __init__(self, reasons: list[str | None], cause: ClientError) -> None:
        super().__init__(", ".join(map(str, reasons)))
        self.reasons = reasons
        self.cause = cause


# --------------------------------------------------------------------------- item codec


def to_attributes(item: Mapping[str, Any]) -> dict:
    """Plain item (str / int / bool values; None = absent) -> DynamoDB attribute values."""
    encoded: dict[str, dict] = {}
    for name, value in item.items():
        if value is None:
            continue
        if isinstance(value, bool):
            encoded[name] = {"BOOL": value}
        elif isinstance(value, int):
            encoded[name] = {"N": str(value)}
        elif isinstance(value, str):
            encoded[name] = {"S": value}
        else:
            raise TypeError(f"attribute {name}: {type(value).__name__} (serialise JSON to a string first)")
    return encoded


def from_attributes(item: Mapping[str, Mapping[str, Any]]) -> dict:
    decoded: dict[str, Any] = {}
    for name, value in item.items():
        if "S" in value:
            decoded[name] = value["S"]
        elif "N" in value:
            decoded[name] = int(value["N"])
        elif "BOOL" in value:
            decoded[name] = value["BOOL"]
        elif "NULL" in value:
            decoded[name] = None
        else:
            raise TypeError(f"attribute {name}: unsupported type {sorted(value)}")
    return decoded


def key(pk: str, sk: str) -> dict:
    return {"pk": pk, "sk": sk}


def item_size(item: Mapping[str, Any]) -> int:
    """Approximate DynamoDB size: attribute names plus UTF-8 values."""
    return sum(len(k.encode()) + len(str(v).encode()) for k, v in item.items() if v is not None)


def dumps(value: Any) -> str:
    """The JSON text of an attribute: sorted keys, compact (equal values, equal text)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def loads(text: str | None, default: Any = None) -> Any:
    return json.loads(text) if text else default


def iso(moment: datetime) -> str:
    """Fixed-width ISO-8601 UTC with microseconds: sorts as text in time order."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def iso_or_none(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return iso(value)
    return str(value)


def utc_second(value: Any) -> str | None:
    """A moment as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC, floored to the second): the form of the
    IP index's times and of Resolver's ``query_timestamp``, so both compare as text.
    Accepts datetimes, ISO strings (``Z`` or an offset) and epoch seconds; None when absent
    or unreadable."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            moment = datetime.fromtimestamp(value, tz=UTC)
        except (ValueError, OverflowError, OSError):  # beyond any date
            return None
    elif isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError):  # e.g. 9999-12-31T23:59:59-01:00: past the calendar in UTC
        return None


def ttl_after(now: datetime, days: int) -> int:
    """Epoch seconds ``days`` after ``now`` (DynamoDB TTL attribute)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return int((now + timedelta(days=days)).timestamp())


# --------------------------------------------------------------------------- the table


class Table:
    """One DynamoDB table through a low-level ``dynamodb`` client.

    ``batch_attempts`` bounds the UnprocessedItems retries of one BatchWriteItem;
    ``backoff_seconds`` is the first retry delay (doubled per attempt, at most 2 s, with
    jitter); ``sleep`` is ``time.sleep`` (replaceable in tests)."""

    def __init__(
        self,
        name: str,
        client: Any,
        *,
        batch_attempts: int = 8,
        backoff_seconds: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.client = client
        self.batch_attempts = batch_attempts
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep

    @property
    def table_name(self) -> str:
        return self.name

    def backoff(self, attempt: int) -> None:
        """Sleep before retry ``attempt + 1``: exponential, capped at 2 s, jittered."""
        delay = min(self.backoff_seconds * (2 ** (attempt - 1)), 2.0)
        self.sleep(delay * (0.5 + random.random() / 2))

    # ---------------------------------------------------------------- reads

    def get(self, item_key: Mapping[str, Any], consistent: bool = True) -> dict | None:
        """The item (decoded) under ``item_key``, or None."""
        response = self.client.get_item(
            TableName=self.name, Key=to_attributes(item_key), ConsistentRead=consistent
        )
        item = response.get("Item")
        return from_attributes(item) if item else None

    def query(self, limit: int | None = None, **kwargs: Any) -> list[dict]:
        """Every item (decoded) of a Query, page after page; at most ``limit`` when given
        (each page asks for what is still missing)."""
        items: list[dict] = []
        start = None
        while True:
            request = dict(kwargs, TableName=self.name)
            if start:
                request["ExclusiveStartKey"] = start
            if limit is not None:
                request["Limit"] = limit - len(items)
            response = self.client.query(**request)
            items += [from_attributes(i) for i in response.get("Items", [])]
            start = response.get("LastEvaluatedKey")
            if not start or (limit is not None and len(items) >= limit):
                return items

    def query_iter(self, **kwargs: Any) -> Iterator[dict]:
        """The items (decoded) of a Query one by one, the next page read only when the
        caller goes on (``Limit`` in ``kwargs``: the page size)."""
        request = dict(kwargs, TableName=self.name)
        while True:
            response = self.client.query(**request)
            for item in response.get("Items", []):
                yield from_attributes(item)
            if not response.get("LastEvaluatedKey"):
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def batch_get(
        self,
        keys: list[Mapping[str, Any]],
        projection: str | None = None,
        names: Mapping[str, str] | None = None,
    ) -> list[dict]:
        """The items (decoded, in no particular order) found under ``keys``: BatchGetItem,
        100 keys a call, eventually consistent; ``projection`` / ``names``: its
        ProjectionExpression and ExpressionAttributeNames. UnprocessedKeys are retried with
        backoff up to ``batch_attempts`` times, then RecordError."""
        found: list[dict] = []
        for start in range(0, len(keys), BATCH_GET_MAX):
            request: dict[str, Any] = {
                "Keys": [to_attributes(k) for k in keys[start : start + BATCH_GET_MAX]]
            }
            if projection:
                request["ProjectionExpression"] = projection
            if names:
                request["ExpressionAttributeNames"] = dict(names)
            for attempt in range(1, self.batch_attempts + 1):
                response = self.client.batch_get_item(RequestItems={self.name: request})
                found += [from_attributes(i) for i in (response.get("Responses") or {}).get(self.name, [])]
                pending = (response.get("UnprocessedKeys") or {}).get(self.name)
                if not pending or not pending.get("Keys"):
                    break
                request = pending
                if attempt < self.batch_attempts:
                    self.backoff(attempt)
            else:
                raise RecordError(
                    f"BatchGetItem: {len(request['Keys'])} keys of {self.name} still unprocessed "
                    f"after {self.batch_attempts} attempts"
                )
        return found

    # ---------------------------------------------------------------- writes

    def put(self, item: Mapping[str, Any], **condition: Any) -> bool:
        """PutItem; ``condition``: ``ConditionExpression`` (and its
        ``ExpressionAttributeValues``). False when the condition failed."""
        try:
            self.client.put_item(TableName=self.name, Item=to_attributes(item), **condition)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def update(self, item_key: Mapping[str, Any], expression: str, **condition: Any) -> bool:
        """UpdateItem of ``item_key`` with ``expression``; ``condition``: its
        ``ConditionExpression``, ``ExpressionAttributeValues`` (encoded) and names. False
        when the condition failed."""
        try:
            self.client.update_item(
                TableName=self.name, Key=to_attributes(item_key), UpdateExpression=expression, **condition
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def transact(self, actions: list[dict]) -> None:
        """TransactWriteItems of ``[{"Put" | "Delete" | "Update" | "ConditionCheck": body}]``
        (bodies without ``TableName``: this table's is added). A cancelled transaction
        raises :class:`Cancelled` with its reasons; other errors propagate."""
        items = [
            {kind: {"TableName": self.name, **body}} for action in actions for kind, body in action.items()
        ]
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons") or []]
            raise Cancelled(reasons, exc) from exc

    def batch_write(self, requests: list[dict]) -> None:
        """BatchWriteItem, 25 per call; UnprocessedItems retried with backoff up to
        ``batch_attempts`` times, then RecordError (nothing is dropped silently)."""
        for start in range(0, len(requests), BATCH_WRITE_MAX):
            pending = requests[start : start + BATCH_WRITE_MAX]
            for attempt in range(1, self.batch_attempts + 1):
                response = self.client.batch_write_item(RequestItems={self.name: pending})
                pending = (response.get("UnprocessedItems") or {}).get(self.name) or []
                if not pending:
                    break
                if attempt < self.batch_attempts:
                    self.backoff(attempt)
            else:
                raise RecordError(
                    f"BatchWriteItem: {len(pending)} items of {self.name} still unprocessed "
                    f"after {self.batch_attempts} attempts"
                )

    def put_requests(self, items: list[Mapping[str, Any]]) -> list[dict]:
        return [{"PutRequest": {"Item": to_attributes(item)}} for item in items]

    def delete_requests(self, keys: list[Mapping[str, Any]]) -> list[dict]:
        return [{"DeleteRequest": {"Key": to_attributes(k)}} for k in keys]
