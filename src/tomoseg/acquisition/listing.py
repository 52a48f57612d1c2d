"""CryoET Data Portal listing: the runs whose membrane annotations or tomograms are new since a date.

The nightly batch (`tomoseg.batch.nightly`) lists with these queries; membrane annotations are found as
`portal.run_metadata` finds them (curated GO ids, shape SegmentationMask, mrc files), never by name. A
portal that cannot be reached is one PortalUnreachable line, not a traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

from tomoseg.acquisition.portal import MASK_FORMAT, SEGMENTATION_SHAPE
from tomoseg.core.errors import TomosegError


class PortalUnreachable(TomosegError):
    """The portal's GraphQL endpoint did not answer (no network, refused, timed out or a server error)."""


def _gql_list(values: list[str]) -> str:
    """A GraphQL list literal of strings (JSON quoting is GraphQL's)."""
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def membrane_annotation_filter(go_ids: list[str]) -> str:
    """GraphQL where-fragment: an annotation with a curated GO id and a SegmentationMask mrc file."""
    return (
        f"objectId: {{_in: {_gql_list(sorted(go_ids))}}}, "
        f"annotationShapes: {{shapeType: {{_eq: {SEGMENTATION_SHAPE}}}, "
        f"annotationFiles: {{format: {{_eq: {json.dumps(MASK_FORMAT)}}}}}}}"
    )


def _short_reason(err: Exception) -> str:
    """The telling part of a connection error ('Connection refused', 'Name or service not known', ...)."""
    text = " ".join(str(err).split())
    found = re.findall(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if found:
        return str(found[-1]).strip()
    return text[:200] or type(err).__name__


def _retry_record(record: logging.LogRecord) -> bool:
    """Keep a urllib3 log record unless it announces a retry (the failure, if any, is reported once)."""
    return not str(record.msg).startswith("Retrying")


@contextlib.contextmanager
def _quiet_retries() -> Iterator[None]:
    """Within the block, urllib3's per-retry warnings are dropped (they would precede our one-line error)."""
    pool_log = logging.getLogger("urllib3.connectionpool")
    pool_log.addFilter(_retry_record)
    try:
        yield
    finally:
        pool_log.removeFilter(_retry_record)


def execute(client: Any, query_text: str) -> dict[str, Any]:
    """Run one GraphQL query on the portal; PortalUnreachable (one line) when the portal does not answer."""
    from gql import gql
    from gql.transport.exceptions import TransportConnectionFailed, TransportServerError

    try:
        with _quiet_retries():
            result: dict[str, Any] = client.get_client().execute(gql(query_text))
            return result
    except (TransportConnectionFailed, TransportServerError) as err:
        raise PortalUnreachable(
            f"the CryoET Data Portal at {client.url} is unreachable ({_short_reason(err)}); nothing was changed"
        ) from None


def paged_runs(client: Any, where: str, page_size: int) -> list[dict[str, Any]]:
    """All runs matching a GraphQL `where` clause, fetched page by page (limit/offset, ordered by id)."""
    rows: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = execute(
            client,
            f"query {{ runs(where: {{{where}}}, orderBy: [{{id: asc}}], "
            f"limitOffset: {{limit: {page_size}, offset: {offset}}}) {{ id name datasetId }} }}",
        )["runs"]
        rows.extend(page)
        if len(page) < page_size:
            return rows
        offset += page_size


def list_new_runs(client: Any, since: str, go_ids: list[str], page_size: int = 500) -> list[dict[str, Any]]:
    """Runs with membrane annotations or tomograms released or modified since `since` (ISO string)."""
    since_json = json.dumps(since)
    membrane = membrane_annotation_filter(go_ids)
    found: dict[tuple[int, str], dict[str, Any]] = {}
    for relation, extra in (("annotations", membrane + ", "), ("tomograms", "")):
        for field in ("releaseDate", "lastModifiedDate"):
            where = f"{relation}: {{{extra}{field}: {{_gte: {since_json}}}}}"
            for row in paged_runs(client, where, page_size):
                found[(int(row["datasetId"]), row["name"])] = row
    if not found:
        return []
    ids = sorted(int(r["id"]) for r in found.values())
    with_membrane: set[int] = set()
    for start in range(0, len(ids), page_size):
        chunk = ids[start : start + page_size]
        where = f"id: {{_in: {chunk}}}, annotations: {{{membrane}}}"
        with_membrane.update(int(r["id"]) for r in paged_runs(client, where, page_size))
    runs = [
        {
            "dataset_id": int(r["datasetId"]),
            "run_id": int(r["id"]),
            "name": r["name"],
            "has_membrane": int(r["id"]) in with_membrane,
        }
        for r in found.values()
    ]
    return sorted(runs, key=lambda r: (r["dataset_id"], r["run_id"]))
