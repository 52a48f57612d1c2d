"""Stand-ins for the CryoET Data Portal and Harvard Dataverse on 127.0.0.1 (tests only).

The portal stand-in executes the real client's GraphQL queries with graphql-core against the schema
the client bundles (cryoet_data_portal/data/schema.graphql), over in-memory tables, and serves files
over HTTP with Range support and injectable faults (404 HTML page, 503, stall, dropped or slow connection).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import operator
import re
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cryoet_data_portal
import graphql
import mrcfile
import numpy as np

SCHEMA_PATH = Path(cryoet_data_portal.__file__).parent / "data" / "schema.graphql"
_SCHEMA: graphql.GraphQLSchema | None = None

# (type, field) -> (related type, local key, remote key, "item" | "list")
RELATIONS = {
    ("Run", "tomograms"): ("Tomogram", "id", "runId", "list"),
    ("Run", "annotations"): ("Annotation", "id", "runId", "list"),
    ("Run", "tomogramVoxelSpacings"): ("TomogramVoxelSpacing", "id", "runId", "list"),
    ("Run", "dataset"): ("Dataset", "datasetId", "id", "item"),
    ("Tomogram", "run"): ("Run", "runId", "id", "item"),
    ("Tomogram", "tomogramVoxelSpacing"): ("TomogramVoxelSpacing", "tomogramVoxelSpacingId", "id", "item"),
    ("Annotation", "run"): ("Run", "runId", "id", "item"),
    ("Annotation", "annotationShapes"): ("AnnotationShape", "id", "annotationId", "list"),
    ("AnnotationShape", "annotation"): ("Annotation", "annotationId", "id", "item"),
    ("AnnotationShape", "annotationFiles"): ("AnnotationFile", "id", "annotationShapeId", "list"),
    ("AnnotationFile", "annotationShape"): ("AnnotationShape", "annotationShapeId", "id", "item"),
    ("TomogramVoxelSpacing", "run"): ("Run", "runId", "id", "item"),
}
DEFAULTS = {
    "String": "",
    "Int": 0,
    "Float": 0.0,
    "Boolean": False,
    "ID": "0",
    "DateTime": "1970-01-01T00:00:00+00:00",
}


def schema() -> graphql.GraphQLSchema:
    """The client's bundled schema, parsed once."""
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = graphql.build_schema(SCHEMA_PATH.read_text())
    return _SCHEMA


def _value(v: Any) -> Any:
    """A column or query value as compared: ISO date strings become aware datetimes (UTC when no zone)."""
    return _date(v) if isinstance(v, str) else v


@functools.lru_cache(maxsize=65536)
def _date(v: str) -> Any:
    """An ISO date string parsed once (other strings unchanged)."""
    if re.match(r"^\d{4}-\d{2}-\d{2}", v):
        parsed = dt.datetime.fromisoformat(v)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
    return v


def _compare(actual: Any, ops: dict[str, Any]) -> bool:
    """Whether a column value passes a GraphQL comparison (`{_eq: ..., _gte: ...}`)."""
    return _comparison(ops)(actual)


def _comparison(ops: dict[str, Any]) -> Callable[[Any], bool]:
    """A GraphQL comparison compiled once per query: `_in` lists become sets, dates are parsed once."""
    checks: list[Callable[[Any, Any], bool]] = []
    for op, raw in ops.items():
        if op == "_is_null":
            checks.append(lambda actual, a, want=bool(raw): (actual is None) == want)
            continue
        if op in ("_in", "_nin"):
            values = [_value(x) for x in raw]
            try:
                members: Any = set(values)
            except TypeError:
                members = values
            inside = op == "_in"
            checks.append(
                lambda actual, a, m=members, inside=inside: actual is not None and (a in m) == inside
            )
        elif op in ("_eq", "_neq", "_gt", "_gte", "_lt", "_lte"):
            b = _value(raw)
            compare = {
                "_eq": operator.eq,
                "_neq": operator.ne,
                "_gt": operator.gt,
                "_gte": operator.ge,
                "_lt": operator.lt,
                "_lte": operator.le,
            }[op]
            checks.append(lambda actual, a, b=b, f=compare: actual is not None and f(a, b))
        elif op in ("_like", "_ilike"):
            pattern = re.compile(
                "^" + ".*".join(re.escape(p) for p in str(raw).split("%")) + "$",
                re.I if op == "_ilike" else 0,
            )
            checks.append(
                lambda actual, a, p=pattern: actual is not None and p.match(str(actual)) is not None
            )
        else:
            raise ValueError(f"stand-in: comparator {op} not supported")

    def passes(actual: Any) -> bool:
        a = _value(actual)
        return all(check(actual, a) for check in checks)

    return passes


class Portal:
    """In-memory tables + files + faults, with a request log the tests can inspect."""

    def __init__(self) -> None:
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, list[str]] = {}
        self.dataverse: list[dict[str, Any]] = []
        self.dataverse_bytes: dict[int, bytes] = {}
        self.log: list[dict[str, Any]] = []
        self.stall_s = 3.0
        self.slow_s = 30.0
        self.url = ""
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self._next_id: dict[str, int] = {}
        self._validated: dict[str, list[graphql.GraphQLError]] = {}
        # The rows of the last query (filtered and ordered), reused for its later pages (offset > 0), so
        # that paging through N rows costs O(N) rather than O(N) per page; a first page always recomputes.
        self._last_query: tuple[str, list[dict[str, Any]]] | None = None
        self._indexes: dict[tuple[str, str], dict[Any, list[dict[str, Any]]]] = {}
        self._indexed_rows: dict[tuple[str, str], tuple[int, int]] = {}

    # ---- tables
    def add(self, type_name: str, **row: Any) -> dict[str, Any]:
        table = self.tables.setdefault(type_name, [])
        row.setdefault("id", self._next_id.get(type_name, 0) + 1)
        self._next_id[type_name] = max(self._next_id.get(type_name, 0), row["id"])
        fresh = {
            k
            for (t, k) in self._indexes
            if t == type_name and self._indexed_rows[t, k] == (id(table), len(table))
        }
        table.append(row)
        for key in fresh:  # keep up-to-date indexes up to date; others are rebuilt when next used
            if row.get(key) is not None:
                self._indexes[type_name, key].setdefault(row[key], []).append(row)
            self._indexed_rows[type_name, key] = (id(table), len(table))
        return row

    def _index(self, type_name: str, key: str) -> dict[Any, list[dict[str, Any]]]:
        """Rows of a table by the value of one column, built once and kept up to date by `add`.

        Relations are looked up here, so a query over N runs costs O(N), not O(N x related rows).
        A table replaced or extended behind `add`'s back gets a fresh index (its length is checked).
        """
        table = self.tables.get(type_name, [])
        index = self._indexes.get((type_name, key))
        if index is None or self._indexed_rows.get((type_name, key)) != (id(table), len(table)):
            index = {}
            for r in table:
                if r.get(key) is not None:
                    index.setdefault(r[key], []).append(r)
            self._indexes[type_name, key] = index
        self._indexed_rows[type_name, key] = (id(table), len(table))
        return index

    def related(self, type_name: str, row: dict[str, Any], field: str) -> list[dict[str, Any]]:
        target, local, remote, _kind = RELATIONS[(type_name, field)]
        value = row.get(local)
        if value is None:
            return []
        return self._index(target, remote).get(value, [])

    def predicate(self, type_name: str, where: dict[str, Any] | None) -> Callable[[dict[str, Any]], bool]:
        """A `where` clause compiled once per query into a test of one row (relations through the indexes)."""
        tests: list[Callable[[dict[str, Any]], bool]] = []
        for key, cond in (where or {}).items():
            if cond is None:
                continue
            if (type_name, key) in RELATIONS:
                inner = self.predicate(RELATIONS[(type_name, key)][0], cond)
                tests.append(
                    lambda row, k=key, inner=inner: any(inner(r) for r in self.related(type_name, row, k))
                )
            elif key.endswith("Aggregate"):
                raise ValueError(f"stand-in: {key} filters not supported")
            else:
                compare = _comparison(cond)
                tests.append(lambda row, k=key, c=compare: c(row.get(k)))
        return lambda row: all(test(row) for test in tests)

    def matches(self, type_name: str, row: dict[str, Any], where: dict[str, Any] | None) -> bool:
        return self.predicate(type_name, where)(row)

    def select(self, type_name: str, args: dict[str, Any]) -> list[dict[str, Any]]:
        limit_offset = args.get("limitOffset") or {}
        offset = limit_offset.get("offset") or 0
        limit = limit_offset.get("limit")
        query = json.dumps([type_name, args.get("where"), args.get("orderBy")], sort_keys=True, default=str)
        if offset and self._last_query is not None and self._last_query[0] == query:
            rows = self._last_query[1]  # the next page of the same listing: the rows it started from
        else:
            where = dict(args.get("where") or {})
            rows = self.tables.get(type_name, [])
            if set(where.get("id") or {}) == {"_in"}:  # a list of ids: look them up, then filter those
                by_id = self._index(type_name, "id")
                rows = [
                    r for value in dict.fromkeys(where.pop("id")["_in"]) for r in by_id.get(_value(value), [])
                ]
            keep = self.predicate(type_name, where)
            rows = [r for r in rows if keep(r)]
            for clause in reversed(args.get("orderBy") or []):
                for key, direction in reversed(list(clause.items())):
                    rows.sort(
                        key=lambda r, k=key: (r.get(k) is None, _value(r.get(k))),
                        reverse=direction.startswith("desc"),
                    )
            self._last_query = (query, rows)
        return rows[offset : offset + limit if limit is not None else None]

    def resolve(self, source: Any, info: graphql.GraphQLResolveInfo, **args: Any) -> Any:
        name = info.field_name
        parent = info.parent_type.name
        if parent == "Query":
            return self.select(graphql.get_named_type(info.return_type).name, args)
        if isinstance(source, dict):
            if name in source:
                return source[name]
            if (parent, name) in RELATIONS:
                target, _l, _r, kind = RELATIONS[(parent, name)]
                keep = self.predicate(target, args.get("where"))
                rows = [r for r in self.related(parent, source, name) if keep(r)]
                if kind == "item":
                    return rows[0] if rows else None
                return {"edges": [{"node": r} for r in rows]}
        if graphql.is_non_null_type(info.return_type):
            named = graphql.get_named_type(info.return_type)
            if isinstance(named, graphql.GraphQLEnumType):
                return next(iter(named.values.values())).value
            return DEFAULTS.get(named.name)
        return None

    def execute(self, query: str, variables: dict | None = None) -> dict[str, Any]:
        try:
            document = graphql.parse(query)
        except graphql.GraphQLError as err:
            return {"data": None, "errors": [err.formatted]}
        # Validation against the large schema costs ~0.1 s a query; pages of one listing differ only in
        # their numbers, so a query is validated once per shape.
        shape = re.sub(r"\b\d+\b", "0", query)
        errors = self._validated.get(shape)
        if errors is None:
            errors = self._validated[shape] = graphql.validate(schema(), document)
        if errors:
            return {"data": None, "errors": [e.formatted for e in errors]}
        result = graphql.execute(schema(), document, variable_values=variables, field_resolver=self.resolve)
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [e.formatted for e in result.errors]
        return body

    # ---- files
    def add_file(self, name: str, data: bytes) -> str:
        self.files[name] = data
        return f"{self.url}/files/{name}"

    def add_dataverse_file(self, directory: str, filename: str, data: bytes, **extra: Any) -> int:
        file_id = 5000 + len(self.dataverse)
        import hashlib

        entry = {
            "label": filename,
            "directoryLabel": directory,
            "restricted": False,
            "dataFile": {
                "id": file_id,
                "filename": filename,
                "filesize": len(data),
                "contentType": "application/octet-stream",
                "checksum": {"type": "MD5", "value": hashlib.md5(data).hexdigest()},
                **extra,
            },
        }
        self.dataverse.append(entry)
        self.dataverse_bytes[file_id] = data
        return file_id

    def count(self, kind: str, contains: str = "") -> int:
        return sum(1 for e in self.log if e["kind"] == kind and contains in e.get("detail", ""))

    # ---- server
    def start(self) -> Portal:
        portal = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes: without this, Nagle's algorithm and the client's
            # delayed ACK hold every keep-alive response ~40 ms (a chunked OME-Zarr download makes dozens)
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _send(
                self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with portal._lock:
                    portal.log.append({"kind": "graphql", "detail": body["query"]})
                answer = portal.execute(body["query"], body.get("variables"))
                self._send(200, json.dumps(answer).encode(), "application/json")

            def do_GET(self) -> None:
                parsed = urllib.parse.urlparse(self.path)
                query = urllib.parse.parse_qs(parsed.query)
                if parsed.path.startswith("/api/datasets/:persistentId/versions/"):
                    with portal._lock:
                        portal.log.append({"kind": "dataverse-list", "detail": parsed.query})
                    limit = int(query.get("limit", ["1000"])[0])
                    offset = int(query.get("offset", ["0"])[0])
                    page = portal.dataverse[offset : offset + limit]
                    answer = {"status": "OK", "totalCount": len(portal.dataverse), "data": page}
                    return self._send(200, json.dumps(answer).encode(), "application/json")
                if parsed.path.startswith("/api/access/datafile/"):
                    file_id = int(parsed.path.rsplit("/", 1)[1])
                    return self._serve(f"datafile/{file_id}", portal.dataverse_bytes.get(file_id))
                if parsed.path.startswith("/files/"):
                    name = parsed.path[len("/files/") :]
                    return self._serve(name, portal.files.get(name))
                if parsed.path.startswith("/records/") and "/files/" in parsed.path:  # Zenodo's file address
                    name = parsed.path.split("/files/", 1)[1]
                    return self._serve(name, portal.files.get(name))
                self._send(404, b"<html><body>Not Found</body></html>", "text/html")

            def _serve(self, name: str, data: bytes | None) -> None:
                rng = self.headers.get("Range")
                with portal._lock:
                    portal.log.append({"kind": "file", "detail": f"{name} range={rng}"})
                    faults = portal.faults.get(name) or []
                    fault = faults.pop(0) if faults else None
                if data is None or fault == "404":
                    return self._send(404, b"<html><body><h1>404 Not Found</h1></body></html>", "text/html")
                if fault == "503":
                    return self._send(503, b"busy", "text/plain")
                if fault == "stall":
                    time.sleep(portal.stall_s)
                start = 0
                if rng:
                    start = int(re.match(r"bytes=(\d+)-", rng).group(1))
                    if start >= len(data):
                        return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{len(data)}"})
                body = data[start:]
                status = 206 if rng else 200
                headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"} if rng else {}
                headers["Accept-Ranges"] = "bytes"
                if fault in ("drop", "slow"):
                    self.send_response(status)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    if fault == "slow":
                        time.sleep(portal.slow_s)
                    self.close_connection = True
                    return
                try:
                    self._send(status, body, "application/octet-stream", headers)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                    super().handle_error(request, client_address)  # a client that gave up is expected here

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()


def mrc_bytes(
    array: np.ndarray, voxel_size: float, origin_xyz: tuple[float, float, float] | None = None
) -> bytes:
    """An MRC file's bytes for `array` (z, y, x) with an isotropic voxel size (and a header origin)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.mrc"
        with mrcfile.new(path) as mrc:
            mrc.set_data(np.ascontiguousarray(array))
            mrc.voxel_size = voxel_size
            if origin_xyz is not None:
                mrc.header.origin = origin_xyz
        return path.read_bytes()


def add_run(
    portal: Portal,
    dataset_id: int,
    run_id: int,
    name: str,
    shape: tuple[int, int, int] = (8, 16, 16),
    voxel: float = 13.48,
    membrane: list[tuple[str, str]] | None = None,
    date: str = "2024-01-10T00:00:00+00:00",
    seed: int = 0,
    extra_tomograms: list[dict[str, Any]] | None = None,
    origin_xyz: tuple[float, float, float] | None = None,
) -> dict[str, Any]:
    """One run with one tomogram (+ optional extra tomograms) and optional annotations on its grid.

    `membrane` lists (GO id, name) pairs; each becomes an annotation with a SegmentationMask mrc file.
    `origin_xyz` is the MRC header origin of the tomogram and annotation files. Returns ids and the
    bytes served, for assertions.
    """
    rng = np.random.default_rng(seed)
    portal.add("Run", id=run_id, datasetId=dataset_id, name=name, s3Prefix="", httpsPrefix="")
    spacing = portal.add("TomogramVoxelSpacing", runId=run_id, voxelSpacing=voxel)
    alignment = portal.add("Alignment", runId=run_id)
    volume = rng.normal(size=shape).astype(np.float32)
    data = mrc_bytes(volume, voxel, origin_xyz)
    tomo_id = run_id * 10
    url = portal.add_file(f"{dataset_id}/{name}/tomogram_{tomo_id}.mrc", data)
    tomo = portal.add(
        "Tomogram",
        id=tomo_id,
        runId=run_id,
        tomogramVoxelSpacingId=spacing["id"],
        alignmentId=alignment["id"],
        voxelSpacing=voxel,
        sizeX=shape[2],
        sizeY=shape[1],
        sizeZ=shape[0],
        httpsMrcFile=url,
        fileSizeMrc=float(len(data)),
        isVisualizationDefault=False,
        isPortalStandard=True,
        processing="raw",
        releaseDate=date,
        lastModifiedDate=date,
        depositionDate=date,
    )
    masks = {}
    for k, (go_id, object_name) in enumerate(membrane or []):
        ann = portal.add(
            "Annotation",
            runId=run_id,
            objectId=go_id,
            objectName=object_name,
            tomogramVoxelSpacingId=spacing["id"],
            releaseDate=date,
            lastModifiedDate=date,
        )
        shape_row = portal.add("AnnotationShape", annotationId=ann["id"], shapeType="SegmentationMask")
        mask = np.zeros(shape, dtype=np.uint8)
        mask[:, k :: 4 + k, :] = 1
        mbytes = mrc_bytes(mask, voxel, origin_xyz)
        murl = portal.add_file(f"{dataset_id}/{name}/annotation_{ann['id']}.mrc", mbytes)
        portal.add(
            "AnnotationFile",
            annotationShapeId=shape_row["id"],
            format="mrc",
            httpsPath=murl,
            fileSize=float(len(mbytes)),
            tomogramVoxelSpacingId=spacing["id"],
            alignmentId=alignment["id"],
        )
        masks[go_id] = mask
    return {
        "tomogram_id": tomo_id,
        "bytes": data,
        "url": url,
        "spacing_id": spacing["id"],
        "alignment_id": alignment["id"],
        "masks": masks,
        "volume": volume,
        "tomogram": tomo,
    }


def add_omezarr(
    portal: Portal,
    tomogram: dict[str, Any],
    store: Path,
    prefix: str,
) -> str:
    """Serve every file of a local OME-Zarr image under `prefix` and link it to a Tomogram row.

    Sets the row's `httpsOmezarrDir`, `fileSizeOmezarr` and `scale{k}Dimensions` ("x,y,z") from the
    store, as the portal does. Returns the image's URL.
    """
    total = 0
    for path in sorted(store.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            portal.add_file(f"{prefix}/{path.relative_to(store).as_posix()}", data)
            total += len(data)
    attrs = json.loads((store / ".zattrs").read_text())
    for k, dataset in enumerate(attrs["multiscales"][0]["datasets"][:3]):
        shape = json.loads((store / dataset["path"] / ".zarray").read_text())["shape"]
        tomogram[f"scale{k}Dimensions"] = ",".join(str(n) for n in reversed(shape[-3:]))
    tomogram["httpsOmezarrDir"] = f"{portal.url}/files/{prefix}"
    tomogram["fileSizeOmezarr"] = float(total)
    return tomogram["httpsOmezarrDir"]
