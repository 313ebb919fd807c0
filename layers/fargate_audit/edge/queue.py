"""The queue sends of the event pipeline (SQS): the sweep planner's messages (a page of a
cluster's tasks each) and the dead letter of a rejected event. AWS errors of a call
propagate; the caller decides what a failed send means."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from fargate_audit.edge.aws import Clients

SEND_MESSAGE_BATCH = 10  # SendMessageBatch: 10 entries per call
# SQS: 256 KiB per message and per SendMessageBatch (the sum of its bodies). AWS has since
# raised both to 1 MiB, but a queue's MaximumMessageSize may still be the old default:
# the smaller figure holds everywhere.
MAX_BATCH_BYTES = 256 * 1024


def _batches(bodies: list[str]) -> Iterator[tuple[int, list[str]]]:
    """(index of the first, bodies) of each SendMessageBatch: at most SEND_MESSAGE_BATCH
    entries whose bodies add up to at most MAX_BATCH_BYTES (a body larger than that alone
    goes alone, for SQS to refuse)."""
    start, chunk, size = 0, [], 0
    for index, body in enumerate(bodies):
        length = len(body.encode("utf-8"))
        if chunk and (len(chunk) == SEND_MESSAGE_BATCH or size + length > MAX_BATCH_BYTES):
            yield start, chunk
            start, chunk, size = index, [], 0
        chunk.append(body)
        size += length
    if chunk:
        yield start, chunk


def send_batches(
    clients: Clients, region: str, queue_url: str, bodies: list[str]
) -> tuple[int, list[tuple[int, str]]]:
    """SendMessageBatch, 10 entries (and at most MAX_BATCH_BYTES) a call; entries failed by
    AWS (not the sender's fault) are sent once more. Returns (messages sent, ``[(index,
    why)]`` of those not queued, ``index`` into ``bodies``)."""
    sqs = clients.get("sqs", region)
    sent, failed = 0, []
    for start, chunk in _batches(bodies):
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
        for _attempt in range(2):
            response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            sent += len(response.get("Successful") or [])
            retry = {item["Id"] for item in response.get("Failed") or [] if not item.get("SenderFault")}
            refused = [item for item in response.get("Failed") or [] if item.get("SenderFault")]
            failed += [(start + int(item["Id"]), str(item.get("Code"))) for item in refused]
            entries = [entry for entry in entries if entry["Id"] in retry]
            if not entries:
                break
        failed += [(start + int(entry["Id"]), "not queued after a retry") for entry in entries]
    return sent, failed


def send_message(
    clients: Clients, region: str, queue_url: str, body: str, attributes: Mapping[str, Any] | None = None
) -> None:
    """One SendMessage (a dead letter)."""
    clients.get("sqs", region).send_message(
        QueueUrl=queue_url, MessageBody=body, MessageAttributes=dict(attributes or {})
    )
