"""Transfer figures for the bench: import a CSV into a table, export the whole table as CSV.

Run by bench.py after the page measurements (or alone: `bench/run --only-transfer`); see
bench/README.md. Standard library only, like bench.py, which it imports as `bench`.

- Import: a CSV of the first fifth of the data set's rows (1,000,000 of 5,000,000; the same
  columns) into a fresh empty `events` table: a raw baseline in this process (csv + one
  sqlite3.executemany in one transaction), Bastion (upload, preview, start, then its job's
  status polled) into SQLite and into PostgreSQL, and sqlite-web's table import form (on a
  slice: it inserts one row at a time).
- Export: the whole `events` table as CSV: a raw baseline (csv.writer over a sqlite3 cursor),
  Bastion's streamed export, sqlite-web's export form and Datasette's `.csv?_stream=on`. Every
  file is counted afterwards (csv.reader), so that a truncated export cannot pass as complete.
- Memory: the resident set of the server's process tree (/proc, every 0.2 s), summed, and the
  peak of the process that did the work (the one whose CPU time grew most: the gunicorn worker
  serving an export, the jobs worker running an import).
"""

# Subprocesses run fixed argument lists (no shell) of programs from this repository's venvs.
# ruff: noqa: S603

from __future__ import annotations

import argparse
import contextlib
import csv
import http.client
import json
import os
import re
import secrets
import shlex
import sqlite3
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import bench as b

TRANSFER = b.DATA / "transfer"
IMPORT_FRACTION = 5  # the import file holds rows // 5 of the data set: 1,000,000 of 5,000,000
SQLITE_WEB_IMPORT_ROWS = 200_000  # sqlite-web imports about 5,000 rows/s: a slice, about 40 s
COLUMNS = ["id", "ts", "user_id", "kind", "amount", "note"]
PG_CONNINFO = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5"
PG_TABLE = "bench_import_events"
PG_SCHEMA = (f"CREATE TABLE {PG_TABLE} (id integer PRIMARY KEY, ts text, user_id integer, kind text, "
             f"amount double precision, note text)")
IMPORT_TARGET_NAME = "Bench import target"
PG_CONNECTION_NAME = "Bench PostgreSQL"
FINAL = {"succeeded", "failed", "cancelled"}
MIB = 1024 * 1024


class ImportMissing(b.BenchError):
    """Bastion answers 404 for the import page: the import flow is not there yet."""


@dataclass
class Transfer:
    """One measured import or export."""

    tool: str
    what: str  # "export", "import → SQLite", "import → PostgreSQL"
    rows: int | None = None  # rows written (export) or inserted (import), counted afterwards
    expected: int | None = None
    seconds: float | None = None
    first_byte: float | None = None  # export: seconds from the request to the first byte of the file
    size: int = 0  # bytes of the file
    worker_mib: float | None = None  # peak RSS of the process that did the work
    growth_mib: float | None = None  # ... minus its RSS when the transfer started
    tree_mib: float | None = None  # peak RSS of the whole server (all its processes, summed)
    note: str = ""

    @property
    def rows_per_s(self) -> float | None:
        return self.rows / self.seconds if self.rows and self.seconds else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only-transfer", action="store_true",
                        help="measure only the imports and exports (same as --only transfer)")
    parser.add_argument("--skip-transfer", action="store_true", help="leave out the imports and exports")
    parser.add_argument("--import-rows", type=int,
                        help=f"rows of the import file (default: the data set's rows / {IMPORT_FRACTION})")
    parser.add_argument("--sqlite-web-import-rows", type=int, default=SQLITE_WEB_IMPORT_ROWS,
                        help=f"rows sqlite-web imports, at most the import file's (default {SQLITE_WEB_IMPORT_ROWS:,}:"
                             " it inserts one row at a time; its rows/s are measured on this slice)")
    parser.add_argument("--keep-transfer-files", action="store_true",
                        help=f"keep the exported files and import databases in {TRANSFER.relative_to(b.ROOT)}")


def wanted(args: argparse.Namespace) -> bool:
    return not args.skip_transfer and (not args.only or "transfer" in args.only)


# --- files ----------------------------------------------------------------------------------------------------------
def import_file(data: b.Dataset, rows: int) -> Path:
    """The first ``rows`` rows of the data set as CSV (header; NULL as an empty cell); cached."""
    path = TRANSFER / f"events-v{b.DATASET_VERSION}-{rows}.csv"
    if path.exists():
        return path
    TRANSFER.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    b.say(f"Writing {path.relative_to(b.ROOT)} ({rows:,} rows, once; cached afterwards) ...")
    started = time.perf_counter()
    db = sqlite3.connect(f"{data.path.as_uri()}?mode=ro", uri=True)
    try:
        with partial.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            cursor = db.execute(f"SELECT {', '.join(COLUMNS)} FROM events WHERE id <= ? ORDER BY id",  # noqa: S608
                                (rows,))
            writer.writerows(cursor)  # None is written as an empty cell
    finally:
        db.close()
    os.replace(partial, path)  # a half-written file never takes the final name
    b.say(f"  written in {time.perf_counter() - started:.1f} s ({path.stat().st_size / MIB:,.1f} MiB)")
    return path


def fresh_sqlite(path: Path) -> Path:
    """An empty database holding the data set's `events` table (the same schema and index)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in (path, path.with_name(path.name + "-journal"), path.with_name(path.name + "-wal")):
        old.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    try:
        db.execute(b.SCHEMA_SQL)
        db.execute("CREATE INDEX events_ts ON events (ts)")
        db.commit()
    finally:
        db.close()
    path.chmod(0o644)
    return path


def sqlite_count(path: Path, table: str = "events") -> int:
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]  # noqa: S608 (a fixed name)
    finally:
        db.close()


def count_csv(path: Path) -> tuple[int, int, str]:
    """(data rows, sum of their ids, a problem or "") of an exported file: the header, then one row per record
    whose id is a whole number; a last record that is not (an error message, a cut-off row) is the problem."""
    rows = id_sum = 0
    problem = ""
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return 0, 0, "the file is empty"
        if [h.strip().lower() for h in header] != COLUMNS:
            problem = f"unexpected header {header[:8]!r}"
        for record in reader:
            try:
                id_sum += int(record[0])
            except (ValueError, IndexError):
                problem = f"record {rows + 1} is not a row: {','.join(record)[:120]!r}"
                break
            if len(record) != len(COLUMNS):
                problem = f"record {rows + 1} has {len(record)} fields"
                break
            rows += 1
    return rows, id_sum, problem


def check_export(result: Transfer, path: Path, expected: int, keep: bool) -> None:
    """Count the file: every row of the table, once (the ids sum up), nothing after. Then delete it (unless kept):
    the full run's files are hundreds of megabytes each."""
    rows, id_sum, problem = count_csv(path)
    if not keep:
        path.unlink()
    result.rows, result.expected = rows, expected
    complete = rows == expected and id_sum == expected * (expected + 1) // 2 and not problem
    if not complete:
        found = f"the file holds {rows:,} of the {expected:,} rows" + (f" ({problem})" if problem else "")
        result.note = "; ".join(filter(None, [result.note, found]))
    b.say(f"  {result.tool}: {rows:,} rows in the file" + ("" if complete else f": INCOMPLETE, {problem}"))


# --- memory of a server ---------------------------------------------------------------------------------------------
class Sampler:
    """Resident memory of a process and its descendants, every ``interval`` seconds, from /proc (Linux)."""

    def __init__(self, root: int, interval: float = 0.2):
        self.root, self.interval = root, interval
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak: dict[int, int] = {}
        self.first: dict[int, int] = {}
        self.cpu_first: dict[int, int] = {}
        self.cpu_last: dict[int, int] = {}
        self.tree_peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    @staticmethod
    def _stat(pid: str) -> list[str] | None:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        return text[text.rfind(")") + 2:].split()  # [state, ppid, ...]: the name may hold spaces

    def sample(self) -> None:
        stats = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (fields := self._stat(entry)) is not None:
                stats[int(entry)] = fields
        children: dict[int, list[int]] = {}
        for pid, fields in stats.items():
            children.setdefault(int(fields[1]), []).append(pid)
        tree, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            if pid in stats:
                tree.append(pid)
                todo += children.get(pid, [])
        total = 0
        for pid in tree:
            fields = stats[pid]
            rss = int(fields[21]) * self.page  # field 24 of /proc/<pid>/stat: resident pages
            cpu = int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
            total += rss
            self.peak[pid] = max(self.peak.get(pid, 0), rss)
            self.first.setdefault(pid, rss)
            self.cpu_first.setdefault(pid, cpu)
            self.cpu_last[pid] = cpu
        self.tree_peak = max(self.tree_peak, total)
        self.samples += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> Sampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def busiest(self) -> int | None:
        """The process whose CPU time grew most while sampled: the one that did the work."""
        grown = {pid: self.cpu_last[pid] - self.cpu_first[pid] for pid in self.cpu_last}
        return max(grown, key=lambda pid: (grown[pid], pid != self.root), default=None)

    def record(self, result: Transfer) -> None:
        worker = self.busiest()
        if worker is not None:
            result.worker_mib = self.peak[worker] / MIB
            result.growth_mib = (self.peak[worker] - self.first[worker]) / MIB
        result.tree_mib = self.tree_peak / MIB if self.samples else None


# --- HTTP -----------------------------------------------------------------------------------------------------------
@dataclass
class Download:
    status: int
    headers: http.client.HTTPMessage
    seconds: float
    first_byte: float | None
    size: int
    body: bytes = b""  # when the answer is not a 200 (kept in memory: a small page)


def download(client: b.Client, method: str, path: str, sink: Path, *, body: str | None = None,
             headers: dict[str, str] | None = None) -> Download:
    """One request on a new connection, its 200 body streamed to ``sink`` (never held in memory); seconds from
    sending the request to the first and to the last byte of the body. Connecting is not part of the time."""
    conn = client._connect(b.REQUEST_TIMEOUT)
    all_headers = {"User-Agent": "bastion-bench", **(headers or {})}
    if client.cookie:
        all_headers["Cookie"] = client.cookie
    try:
        conn.connect()
        started = time.perf_counter()
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        if response.status != 200:
            data = response.read()
            return Download(response.status, response.msg, time.perf_counter() - started, None, len(data), data)
        first = None
        size = 0
        with sink.open("wb") as out:
            while chunk := response.read1(1 << 20):
                if first is None:
                    first = time.perf_counter() - started
                out.write(chunk)
                size += len(chunk)
        return Download(200, response.msg, time.perf_counter() - started, first, size)
    finally:
        conn.close()


def post_file(client: b.Client, path: str, fields: list[tuple[str, str]], file_field: str, file: Path,
              headers: dict[str, str]) -> tuple[int, http.client.HTTPMessage, bytes, float]:
    """A multipart/form-data POST whose file part is streamed from disk (Content-Length from its size)."""
    boundary = "bench-" + secrets.token_hex(16)
    head = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
                    for name, value in fields)
    head += (f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{file.name}"\r\n'
             "Content-Type: text/csv\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def parts() -> Iterator[bytes]:
        yield head
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                yield chunk
        yield tail

    conn = client._connect(b.REQUEST_TIMEOUT)
    all_headers = {"User-Agent": "bastion-bench", "Accept": "text/html", **headers,
                   "Content-Type": f"multipart/form-data; boundary={boundary}",
                   "Content-Length": str(len(head) + file.stat().st_size + len(tail))}
    if client.cookie:
        all_headers["Cookie"] = client.cookie
    try:
        started = time.perf_counter()
        conn.request("POST", path, body=parts(), headers=all_headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, response.msg, data, time.perf_counter() - started
    finally:
        conn.close()


def pid_of(server: b.Server) -> int:
    if server.proc is None:
        raise b.BenchError(f"{server.name} is not running")
    return server.proc.pid


def location(headers: http.client.HTTPMessage) -> str:
    """The path and query of a redirect's Location (absolute or not)."""
    parts = urllib.parse.urlsplit(headers.get("Location") or "")
    return parts.path + (f"?{parts.query}" if parts.query else "")


@dataclass
class Form:
    action: str | None
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    buttons: list[tuple[str, str]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


class FormParser(HTMLParser):
    """The forms of a page, with the values a browser would send: inputs, checked boxes and radios, each select's
    selected option (or its first), textareas; submit buttons apart; disabled controls left out."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.form: Form | None = None
        self.select: tuple[str, list[tuple[str, bool]]] | None = None
        self.option: list[Any] | None = None  # [value or None, text, selected]
        self.textarea: list[str] | None = None  # [name, text]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v if v is not None else "" for k, v in attrs}
        if tag == "form":
            self.form = Form(a.get("action"), a.get("method", "get").lower())
            self.forms.append(self.form)
        if self.form is None or "disabled" in a:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            if kind == "file":
                self.form.files.append(name)
            elif kind in ("submit", "image", "button", "reset"):
                self.form.buttons.append((name, a.get("value", "")))
            elif kind not in ("checkbox", "radio") or "checked" in a:
                self.form.fields.append((name, a.get("value", "on" if kind in ("checkbox", "radio") else "")))
        elif tag == "button" and name:
            self.form.buttons.append((name, a.get("value", "")))
        elif tag == "select" and name:
            self.select = (name, [])
        elif tag == "option" and self.select is not None:
            self.option = [a.get("value"), "", "selected" in a]
        elif tag == "textarea" and name:
            self.textarea = [name, ""]

    def handle_data(self, data: str) -> None:
        if self.option is not None:
            self.option[1] += data
        if self.textarea is not None:
            self.textarea[1] += data

    def _end_option(self) -> None:
        if self.option is not None and self.select is not None:
            value, text, selected = self.option
            self.select[1].append((text.strip() if value is None else value, selected))
        self.option = None

    def handle_endtag(self, tag: str) -> None:
        if tag in ("option", "select"):
            self._end_option()
        if tag == "select" and self.select is not None and self.form is not None:
            name, options = self.select
            chosen = [value for value, selected in options if selected] or [value for value, _ in options[:1]]
            self.form.fields += [(name, value) for value in chosen]
            self.select = None
        elif tag == "textarea" and self.textarea is not None and self.form is not None:
            name, text = self.textarea
            self.form.fields.append((name, text[1:] if text.startswith("\n") else text))
            self.textarea = None
        elif tag == "form":
            self.form = None


def forms_of(body: bytes) -> list[Form]:
    parser = FormParser()
    parser.feed(body.decode("utf-8", errors="replace"))
    parser.close()
    return [form for form in parser.forms if form.method == "post"]


def page_problem(body: bytes) -> str:
    """The error messages a form page shows (class="error"), as plain text."""
    found = re.findall(rb'class="error"[^>]*>(.*?)</(?:div|span|p|ul)>', body, flags=re.S)
    text = " ".join(re.sub(r"<[^>]+>", " ", f.decode("utf-8", errors="replace")) for f in found)
    return re.sub(r"\s+", " ", text).strip()[:300] or "no error message on the page"


# --- raw baselines --------------------------------------------------------------------------------------------------
def raw_import(run: b.Run, source: Path, rows: int) -> None:
    target = fresh_sqlite(TRANSFER / "import-raw.sqlite3")
    result = Transfer("raw (Python)", "import → SQLite", expected=rows, size=source.stat().st_size,
                      note="csv.reader + one sqlite3 executemany in one transaction, empty cells as NULL")
    b.say(f"raw import: {rows:,} rows into {target.relative_to(b.ROOT)} ...")
    db = sqlite3.connect(target, isolation_level=None)
    try:
        started = time.perf_counter()
        with source.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            marks = ", ".join("?" for _ in header)
            db.execute("BEGIN")
            db.executemany(f"INSERT INTO events ({', '.join(header)}) VALUES ({marks})",  # noqa: S608 (our header)
                           (tuple(v if v != "" else None for v in row) for row in reader))
            db.execute("COMMIT")
        result.seconds = time.perf_counter() - started
    finally:
        db.close()
    result.rows = sqlite_count(target)
    report(run, result)


def raw_export(run: b.Run) -> None:
    data = run.data
    sink = TRANSFER / "export-raw.csv"
    result = Transfer("raw (Python)", "export", note="csv.writer over a sqlite3 cursor, to a file")
    b.say(f"raw export: {data.rows:,} rows to {sink.relative_to(b.ROOT)} ...")
    db = sqlite3.connect(f"{data.path.as_uri()}?mode=ro", uri=True)
    try:
        started = time.perf_counter()
        with sink.open("w", newline="", encoding="utf-8") as handle:
            cursor = db.execute(f"SELECT {', '.join(COLUMNS)} FROM events ORDER BY id")  # noqa: S608 (fixed)
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            writer.writerows(cursor)
        result.seconds = time.perf_counter() - started
    finally:
        db.close()
    result.size = sink.stat().st_size
    check_export(result, sink, data.rows, run.args.keep_transfer_files)
    report(run, result)


def report(run: b.Run, result: Transfer) -> None:
    run.transfers.append(result)
    parts = [f"{b.fmt(result.rows_per_s, 0)} rows/s", f"{b.fmt(result.seconds, 2)} s"]
    if result.first_byte is not None:
        parts.append(f"first byte {result.first_byte:.3f} s")
    if result.worker_mib is not None:
        parts.append(f"peak RSS {result.worker_mib:,.0f} MiB (+{b.fmt(result.growth_mib, 0)} while working; "
                     f"whole server {b.fmt(result.tree_mib, 0)} MiB)")
    b.say(f"  {result.tool}, {result.what}: " + ", ".join(parts))


# --- Bastion --------------------------------------------------------------------------------------------------------
class BastionTransfers:
    """A Bastion server for the transfers (the page bench's data directory, export time limit raised), signed in."""

    def __init__(self, run: b.Run):
        self.run = run
        bastion = run.bastion
        if bastion is None or not bastion.connection_id:
            raise b.BenchError("Bastion's set-up did not complete, so its transfers were not measured")
        self.bastion = bastion
        self.commands: list[str] = []
        roots = f"{run.data.path.parent},{TRANSFER}"
        # Documented settings: the page bench's roots plus the import targets' folder, and time limits that a
        # 5,000,000-row export and a 1,000,000-row import fit in. BASTION_EXPORT_REAUTH_ROWS keeps its default:
        # the export asks for the password like it does for a user (see `export`).
        self.settings = {"BASTION_SQLITE_ROOTS": roots, "BASTION_EXPORT_TIMEOUT": "7200",
                         "BASTION_IMPORT_TIMEOUT": "7200"}
        self.env = bastion.env | self.settings
        self.server: b.Server | None = None
        self.client: b.Client | None = None
        self.jar: dict[str, str] = {}

    def helper(self, spec: dict[str, Any], *, show: str) -> dict[str, Any]:
        argv = [str(b.BASTION_BIN / "python"), str(b.BENCH / "bastion_helper.py"), json.dumps(spec)]
        env = self.env | {"BASTION_DATA_DIR": str(self.bastion.data_dir)}
        self.commands.append(f"BASTION_DATA_DIR={self.bastion.data_dir} "
                             f"BASTION_SQLITE_ROOTS={self.settings['BASTION_SQLITE_ROOTS']} "
                             f"{b.BASTION_BIN / 'python'} bench/bastion_helper.py '<spec>'  # {show}")
        done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=b.ROOT, check=False)
        if done.returncode != 0:
            raise b.BenchError(f"Bastion: registering {spec['name']!r} failed:\n{done.stdout}{done.stderr}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def register_sqlite(self, path: Path) -> int:
        spec = {"admin": b.ADMIN_USER, "name": IMPORT_TARGET_NAME, "path": str(path)}
        return self.helper(spec, show=f"create_connection(): {path.name}, the SQLite import target")["connection_id"]

    def register_postgresql(self) -> int:
        spec = {"admin": b.ADMIN_USER, "name": PG_CONNECTION_NAME, "connection": {
            "engine": "postgresql", "host": "127.0.0.1", "port": 5432, "database": "test", "username": "postgres",
            "tls_mode": "disable"}}
        return self.helper(spec, show="create_connection(): PostgreSQL 127.0.0.1:5432 db test user postgres")[
            "connection_id"]

    def start(self) -> b.Client:
        port = b.free_port()
        argv = [str(b.BASTION_BIN / "bastion"), "--data-dir", str(self.bastion.data_dir), "serve", "--host",
                "127.0.0.1", "--port", str(port)]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            argv.append("--allow-root")
        settings = " ".join(f"{k}={v}" for k, v in self.settings.items())
        self.commands.append(f"{settings} {shlex.join(argv)}")
        self.server = b.Server("bastion-transfer", argv, self.env, port)
        self.server.start()
        self.client = client = b.Client(port, self.run.tls)
        b.say(f"Bastion (transfers): serving {client.base}/ (log: {self.server.log.relative_to(b.ROOT)})")
        self.server.wait_ready(client, "/accounts/login/")
        cookie = self.bastion.login(client)
        self.jar = dict(part.split("=", 1) for part in cookie.split("; "))
        client.cookie = cookie
        return client

    def need_client(self) -> b.Client:
        if self.client is None:
            raise b.BenchError("Bastion's transfer server was not started")
        return self.client

    @property
    def pid(self) -> int:
        if self.server is None:
            raise b.BenchError("Bastion's transfer server was not started")
        return pid_of(self.server)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.server is not None:
            self.server.stop()

    def form_headers(self, referer: str) -> dict[str, str]:
        base = self.client.base if self.client else ""
        return {"Origin": base, "Referer": base + referer}

    def remember(self, headers: http.client.HTTPMessage) -> None:
        """Keep the cookies a response sets (a rotated session or CSRF cookie), as a browser does."""
        if self.client is not None and (new := b.cookies_from(headers)):
            self.jar |= new
            self.client.cookie = b.cookie_header(self.jar)

    def reauthenticate(self, path: str) -> None:
        """The password form a user gets before a large export, filled in as a browser would."""
        client = self.need_client()
        status, headers, body = client.request("GET", path)
        self.remember(headers)
        form = next((f for f in forms_of(body) if any(n == "password" for n, _ in f.fields)), None)
        if status != 200 or form is None:
            raise b.BenchError(f"Bastion: GET {path} answered {status} without a password form")
        fields = [(n, v) for n, v in form.fields if n != "password"] + [("password", self.bastion.password)]
        target = urllib.parse.urljoin(path, form.action or path)
        status, headers, body = client.request("POST", target, body=urllib.parse.urlencode(fields), headers={
            "Content-Type": "application/x-www-form-urlencoded", **self.form_headers(path)})
        self.remember(headers)
        if status not in (302, 303):
            raise b.BenchError(f"Bastion: re-authentication failed ({status}): {page_problem(body)}")

    def export(self, conn_id: int) -> None:
        """The whole table as CSV, streamed: the page's form posted back, as the Download button does."""
        run, client = self.run, self.need_client()
        path = f"/db/{conn_id}/export/?t=events"
        result = Transfer("Bastion", "export")
        b.say(f"Bastion export: POST {path} (format=csv) ...")
        sink = TRANSFER / "export-bastion.csv"
        for attempt in (1, 2):
            status, headers, body = client.request("GET", path)
            self.remember(headers)
            if status != 200:
                raise b.BenchError(f"Bastion: GET {path} answered {status}")
            token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body)
            if not token:
                raise b.BenchError(f"Bastion: the export page {path} has no CSRF token")
            form = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1).decode(), "format": "csv"})
            client.close()  # the export runs on its own connection
            with Sampler(self.pid) as sampler:
                got = download(client, "POST", path, sink, body=form, headers={
                    "Content-Type": "application/x-www-form-urlencoded", "Accept": "text/csv,*/*",
                    **self.form_headers(path)})
            self.remember(got.headers)
            where = location(got.headers)
            if got.status in (302, 303) and "/reauthenticate/" in where and attempt == 1:
                result.note = "asked for the password again first (BASTION_EXPORT_REAUTH_ROWS); timed after that"
                b.say("  Bastion asked for the password again (a large export): re-authenticating as a user does")
                self.reauthenticate(where)
                continue
            if got.status != 200:
                raise b.BenchError(f"Bastion: POST {path} answered {got.status}"
                                   + (f" (Location: {where})" if where else f": {page_problem(got.body)}"))
            break
        result.seconds, result.first_byte, result.size = got.seconds, got.first_byte, got.size
        sampler.record(result)
        check_export(result, sink, run.data.rows, run.args.keep_transfer_files)
        report(run, result)

    def import_csv(self, conn_id: int, table: str, source: Path, rows: int, what: str,
                   count: Any) -> None:
        """Upload, preview, start; the job's status polled until it ends. Rows/s: from the start to the end."""
        run, client = self.run, self.need_client()
        page = f"/db/{conn_id}/import/?t={urllib.parse.quote(table)}"
        result = Transfer("Bastion", what, expected=rows, size=source.stat().st_size)
        b.say(f"Bastion {what}: {rows:,} rows through {page} ...")
        status, headers, body = client.request("GET", page)
        self.remember(headers)
        if status == 404:
            raise ImportMissing(f"GET {page} answered 404")
        upload = next((f for f in forms_of(body) if f.files), None)
        if status != 200 or upload is None:
            raise b.BenchError(f"Bastion: GET {page} answered {status}"
                               + ("" if status != 200 else " without a file upload form"))
        target = urllib.parse.urljoin(page, upload.action or page)
        client.close()
        status, headers, body, upload_seconds = post_file(client, target, upload.fields, upload.files[0], source,
                                                          self.form_headers(page))
        self.remember(headers)
        preview = location(headers)
        if status not in (302, 303) or not preview:
            raise b.BenchError(f"Bastion: the upload (POST {target}) answered {status}: {page_problem(body)}")
        b.say(f"  uploaded {source.stat().st_size / MIB:,.1f} MiB in {upload_seconds:.1f} s; preview: {preview[:60]}…")
        status, headers, body = client.request("GET", preview)
        self.remember(headers)
        forms = forms_of(body)
        form = next((f for f in forms if ("action", "start") in f.buttons), None)
        if status != 200 or form is None:
            raise b.BenchError(f"Bastion: GET {preview} answered {status}"
                               + ("" if status != 200 else " without a form with a start button"))
        start = urllib.parse.urljoin(preview, form.action or preview)
        fields = [*form.fields, ("action", "start")]
        with Sampler(self.pid) as sampler:
            started = time.perf_counter()
            status, headers, body = client.request("POST", start, body=urllib.parse.urlencode(fields), headers={
                "Content-Type": "application/x-www-form-urlencoded", **self.form_headers(preview)})
            self.remember(headers)
            job = location(headers)
            found = re.fullmatch(r"/jobs/([0-9a-fA-F-]{32,36})/", job)
            if status not in (302, 303) or not found:
                raise b.BenchError(f"Bastion: starting the import answered {status}"
                                   + (f" (Location: {job})" if job else f": {page_problem(body)}"))
            state = self.wait_for_job(f"/jobs/{found.group(1)}/status/", started, rows)
            finished = state.pop("_seen_at")
        result.seconds = finished - started
        sampler.record(result)
        result.note = f"upload {upload_seconds:.1f} s before the start, not counted"
        if state.get("status") != "succeeded":
            raise b.BenchError(f"Bastion: the {what} ended {state.get('status')!r}: {state.get('message')}"
                               + (f" {state['error']}" if state.get("error") else ""))
        result.rows = count()
        if result.rows != rows or state.get("rows_done") != rows:
            result.note += f"; the table holds {result.rows} rows, the job says {state.get('rows_done')}"
        report(run, result)

    def wait_for_job(self, status_path: str, started: float, rows: int) -> dict[str, Any]:
        client = self.need_client()
        deadline = started + max(1800.0, rows / 200)
        last_said = 0.0
        while True:
            status, _, body = client.request("GET", status_path, headers={"Accept": "application/json"})
            seen = time.perf_counter()
            if status != 200:
                raise b.BenchError(f"Bastion: GET {status_path} answered {status}")
            state = json.loads(body)
            if state.get("status") in FINAL:
                state["_seen_at"] = seen
                return state
            elapsed = seen - started
            if seen > deadline:
                raise b.BenchError(f"Bastion: the import job did not end within {elapsed:.0f} s ({state})")
            if elapsed - last_said >= 10:
                last_said = elapsed
                b.say(f"  {state.get('status')}: {state.get('rows_done', 0):,} rows after {elapsed:.0f} s")
            time.sleep(min(0.5, 0.05 + elapsed / 20))  # fine at first (short imports), coarser later


def pg(statements: list[str], query: str | None = None) -> Any:
    """Run the bench's fixed statements on the local PostgreSQL server (through the helper: psycopg is in
    Bastion's venv); None when the server cannot be reached."""
    spec = {"conninfo": PG_CONNINFO, "statements": statements, "query": query}
    argv = [str(b.BASTION_BIN / "python"), str(b.BENCH / "bastion_helper.py"), "pg", json.dumps(spec)]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=b.ROOT, check=False)
    if done.returncode == 3:
        return None
    if done.returncode != 0:
        raise b.BenchError(f"PostgreSQL set-up failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_bastion_transfers(run: b.Run, source: Path, rows: int) -> None:
    side = BastionTransfers(run)
    target = fresh_sqlite(TRANSFER / "import-bastion.sqlite3")
    target_id = side.register_sqlite(target)
    pg_ready = pg([f"DROP TABLE IF EXISTS {PG_TABLE}", PG_SCHEMA, f"CREATE INDEX ON {PG_TABLE} (ts)"])
    pg_id = side.register_postgresql() if pg_ready is not None else None
    try:
        side.start()
        try:
            side.export(side.bastion.connection_id)
        except b.BenchError as exc:
            error(run, "Bastion", exc)
        try:
            side.import_csv(target_id, "events", source, rows, "import → SQLite", lambda: sqlite_count(target))
            if pg_id is None:
                note(run, "PostgreSQL at 127.0.0.1:5432 (user postgres, db test) could not be reached: "
                          "Bastion's import into PostgreSQL was not measured.")
            else:
                side.import_csv(pg_id, PG_TABLE, source, rows, "import → PostgreSQL",
                                lambda: (pg([], f"SELECT count(*) FROM {PG_TABLE}") or {}).get("value"))  # noqa: S608
        except ImportMissing as exc:
            note(run, f"Bastion's import is not available yet ({exc}): its import figures are n/a.")
        except b.BenchError as exc:
            error(run, "Bastion", exc)
    finally:
        side.stop()
        run.commands["Bastion (transfers)"] = side.commands
        if pg_ready is not None:
            with contextlib.suppress(b.BenchError):
                pg([f"DROP TABLE IF EXISTS {PG_TABLE}"])


# --- the peers ------------------------------------------------------------------------------------------------------
def peer(run: b.Run, name: str, argv: list[str], port: int, ready: str) -> tuple[b.Server, b.Client]:
    run.commands.setdefault("Peers (transfers)", []).append(shlex.join(argv))
    server = b.Server(name, argv, b.clean_env(), port)
    server.start()
    client = b.Client(port, run.peer_tls())
    b.say(f"{name}: serving {client.base}/ (log: {server.log.relative_to(b.ROOT)})")
    server.wait_ready(client, ready)
    return server, client


def datasette_export(run: b.Run) -> None:
    data = run.data
    port = b.free_port()
    argv = [str(b.PEERS_BIN / "datasette"), "serve", "-i", str(data.path), "-h", "127.0.0.1", "-p", str(port),
            *run.peer_tls_args("datasette")]
    server, client = peer(run, "datasette-transfer", argv, port, "/-/versions.json")
    try:
        path = f"/{data.path.stem}/events.csv?_stream=on"
        sink = TRANSFER / "export-datasette.csv"
        result = Transfer("Datasette", "export")
        b.say(f"Datasette export: GET {path} ...")
        with Sampler(pid_of(server)) as sampler:
            got = download(client, "GET", path, sink, headers={"Accept": "text/csv,*/*"})
        if got.status != 200:
            raise b.BenchError(f"Datasette: GET {path} answered {got.status}")
        result.seconds, result.first_byte, result.size = got.seconds, got.first_byte, got.size
        sampler.record(result)
        with sink.open("rb") as handle:
            handle.seek(max(0, got.size - 300))
            tail = handle.read().decode("utf-8", errors="replace")
        if "CSV contains more than" in tail:
            result.note = (f"stopped by its max_csv_mb setting (default 100 MB) after {got.size / MIB:,.0f} MiB: "
                           "the file ends with an error message instead of the remaining rows")
        check_export(result, sink, data.rows, run.args.keep_transfer_files)
        report(run, result)
    finally:
        client.close()
        server.stop()


def sqlite_web_export(run: b.Run) -> None:
    data = run.data
    port = b.free_port()
    argv = [str(b.PEERS_BIN / "sqlite_web"), str(data.path), "-H", "127.0.0.1", "-p", str(port), "--no-browser",
            "--read-only", *run.peer_tls_args("sqlite-web")]
    server, client = peer(run, "sqlite-web-export", argv, port, "/")
    try:
        path = "/events/export/"
        sink = TRANSFER / "export-sqlite-web.csv"
        result = Transfer("sqlite-web", "export")
        b.say(f"sqlite-web export: POST {path} (export_format=csv, every column) ...")
        form = urllib.parse.urlencode([("export_format", "csv"), *[("columns", c) for c in COLUMNS]])
        with Sampler(pid_of(server)) as sampler:
            got = download(client, "POST", path, sink, body=form, headers={
                "Content-Type": "application/x-www-form-urlencoded", "Accept": "text/csv,*/*"})
        if got.status != 200:
            raise b.BenchError(f"sqlite-web: POST {path} answered {got.status}")
        result.seconds, result.first_byte, result.size = got.seconds, got.first_byte, got.size
        sampler.record(result)
        check_export(result, sink, data.rows, run.args.keep_transfer_files)
        report(run, result)
    finally:
        client.close()
        server.stop()


def sqlite_web_import(run: b.Run, source: Path, rows: int, full_rows: int) -> None:
    target = fresh_sqlite(TRANSFER / "import-sqlite-web.sqlite3")
    port = b.free_port()
    argv = [str(b.PEERS_BIN / "sqlite_web"), str(target), "-H", "127.0.0.1", "-p", str(port), "--no-browser",
            *run.peer_tls_args("sqlite-web")]
    server, client = peer(run, "sqlite-web-import", argv, port, "/")
    result = Transfer("sqlite-web", "import → SQLite", expected=rows, size=source.stat().st_size)
    if rows < full_rows:
        result.note = f"measured on the first {rows:,} of the {full_rows:,} rows (it inserts one row at a time)"
    try:
        path = "/events/import/"
        b.say(f"sqlite-web import: POST {path} ({rows:,} rows) ...")
        with Sampler(pid_of(server)) as sampler:
            status, _, body, seconds = post_file(client, path, [], "file", source, {})
        if status not in (302, 303):
            raise b.BenchError(f"sqlite-web: POST {path} answered {status}: {page_problem(body)}")
        result.seconds = seconds
        sampler.record(result)
    finally:
        client.close()
        server.stop()
    result.rows = sqlite_count(target)
    if result.rows != rows:
        result.note = "; ".join(filter(None, [result.note, f"the table holds {result.rows:,} of {rows:,} rows"]))
    report(run, result)


# --- the whole part -------------------------------------------------------------------------------------------------
def note(run: b.Run, message: str) -> None:
    b.say(message)
    run.notes.append(message)


def error(run: b.Run, tool: str, exc: Exception) -> None:
    message = str(exc) if str(exc).lower().startswith(tool.lower()) else f"{tool}: {exc}"
    b.say(f"ERROR: {message}")
    run.errors.append(message)


def run_transfer(run: b.Run) -> None:
    """Every import and export, one tool after the other; a failing tool is an error, the others still run."""
    data, args = run.data, run.args
    rows = min(args.import_rows or max(1000, data.rows // IMPORT_FRACTION), data.rows)
    web_rows = min(rows, args.sqlite_web_import_rows)
    TRANSFER.mkdir(parents=True, exist_ok=True)
    source = import_file(data, rows)
    web_source = import_file(data, web_rows)
    b.say(f"Transfers: import {rows:,} rows from {source.relative_to(b.ROOT)}, export {data.rows:,} rows")
    steps = [
        ("raw", lambda: raw_export(run)),
        ("raw", lambda: raw_import(run, source, rows)),
        ("Bastion", lambda: run_bastion_transfers(run, source, rows)),
        ("Datasette", lambda: datasette_export(run)),
        ("sqlite-web", lambda: sqlite_web_export(run)),
        ("sqlite-web", lambda: sqlite_web_import(run, web_source, web_rows, rows)),
    ]
    try:
        for tool, step in steps:
            try:
                step()
            except b.BenchError as exc:
                error(run, tool, exc)
            b.say("")
    finally:
        if not args.keep_transfer_files:
            for leftover in TRANSFER.glob("export-*.csv"):
                leftover.unlink()
            for leftover in TRANSFER.glob("import-*.sqlite3*"):
                leftover.unlink()


# --- figures --------------------------------------------------------------------------------------------------------
def find(run: b.Run, tool: str, what: str) -> Transfer | None:
    return next((t for t in run.transfers if t.tool == tool and t.what == what), None)


def values(run: b.Run) -> dict[str, float | None]:
    """The RESULT line's transfer figures: Bastion's rows/s over the raw baseline's, and the export's memory."""
    def rate(tool: str, what: str) -> float | None:
        found = find(run, tool, what)
        return found.rows_per_s if found and not incomplete(found) else None

    def over(a: float | None, c: float | None) -> float | None:
        return a / c if a is not None and c else None

    export = find(run, "Bastion", "export")
    return {
        "import_vs_raw": over(rate("Bastion", "import → SQLite"), rate("raw (Python)", "import → SQLite")),
        "export_vs_raw": over(rate("Bastion", "export"), rate("raw (Python)", "export")),
        "export_rss_mb": export.worker_mib if export and not incomplete(export) else None,
    }


def incomplete(result: Transfer) -> bool:
    return result.expected is not None and result.rows != result.expected


def first_byte_line(run: b.Run) -> str:
    export = find(run, "Bastion", "export")
    first = export.first_byte if export else None
    met = "not measured" if first is None else "met" if first < 1.0 else "NOT met"
    return f"Bastion's export, first byte: {b.fmt(first, 3)} s (target < 1 s: {met})"


def table_lines(run: b.Run) -> list[str]:
    lines = ["| tool | transfer | rows | seconds | rows/s | first byte s | MiB | peak RSS MiB (worker) | "
             "RSS growth MiB (worker) | peak RSS MiB (server) | note |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for t in run.transfers:
        rows = b.fmt(t.rows, 0) + ("" if not incomplete(t) else f" of {t.expected:,}")
        lines.append(f"| {t.tool} | {t.what} | {rows} | {b.fmt(t.seconds, 2)} | {b.fmt(t.rows_per_s, 0)} | "
                     f"{b.fmt(t.first_byte, 3)} | {t.size / MIB:,.1f} | {b.fmt(t.worker_mib, 0)} | "
                     f"{b.fmt(t.growth_mib, 0)} | {b.fmt(t.tree_mib, 0)} | {t.note} |")
    return lines


def report_lines(run: b.Run) -> list[str]:
    if not run.transfers:
        return []
    data = run.data
    return [
        "## Transfers", "",
        f"Export: the whole `events` table ({data.rows:,} rows) as CSV, read by Python's http.client on the same "
        "machine and written to a file, then counted with csv.reader (every row once, nothing after it). Import: "
        "a CSV of the data set's first rows (same columns, a header, NULL as an empty cell) into an empty "
        "`events` table with the same schema and index, the rows counted in the table afterwards. Bastion's "
        "import: the upload form, the preview page's form posted back with `action=start`, then "
        "`/jobs/<id>/status/` polled; its time runs from that POST to the job's end (the upload is not "
        "counted). Peak RSS: /proc every 0.2 s; \"worker\" is the process whose CPU time grew most (the one that "
        "did the work), its growth that peak minus its RSS when the transfer started; \"server\" is all of the "
        "server's processes summed (Bastion: the gunicorn master, its workers and the jobs worker). MiB: the size "
        "of the exported or imported file.", "",
        *table_lines(run), "",
        f"- {first_byte_line(run)}",
        "- The raw baselines run in the bench's own process: no server, no HTTP, no TLS.",
        "- sqlite-web builds the whole export in memory before its first byte; Datasette streams but stops at "
        "its `max_csv_mb` (100 MB by default).", "",
    ]


def summary_lines(run: b.Run) -> list[str]:
    if not run.transfers:
        return []
    lines = ["", f"{'tool':<13} {'transfer':<20} {'rows':>10} {'seconds':>9} {'rows/s':>10} {'1st byte':>9} "
                 f"{'RSS MiB':>8} {'growth':>7} {'server':>7}"]
    for t in run.transfers:
        lines.append(f"{t.tool:<13} {t.what:<20} {b.fmt(t.rows, 0):>10} {b.fmt(t.seconds, 2):>9} "
                     f"{b.fmt(t.rows_per_s, 0):>10} {b.fmt(t.first_byte, 3):>9} {b.fmt(t.worker_mib, 0):>8} "
                     f"{b.fmt(t.growth_mib, 0):>7} {b.fmt(t.tree_mib, 0):>7}"
                     + ("  INCOMPLETE" if incomplete(t) else ""))
    return [*lines, "", first_byte_line(run)]
