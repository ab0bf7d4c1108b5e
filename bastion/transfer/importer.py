"""Running an import: the rows of an uploaded file into one table, all or nothing (T24, T28, T33).

The whole import is one transaction on the target database: a refused value or row, the row
limit, the time limit or a cancel stops it and rolls everything back, so the table is exactly
as it was. The rows are read from the file as they are written (constant memory), converted a
column at a time (convert.py) and written in batches (writers.py). The user's grants are checked
again when the job starts (they may have changed since the upload): import on the table, insert
on every mapped column, and update on the overwritten ones when existing rows are updated.

Each import writes one audit event with its rows, bytes and outcome, failures and cancels too.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bastion.access.models import Action, ColumnMode
from bastion.access.policy import TableAccess, table_access, visible_tables
from bastion.audit.models import Outcome
from bastion.audit.services import record
from bastion.connections import limits
from bastion.connections.engines import get_engine
from bastion.connections.errors import engine_reason
from bastion.explorer.schema import KeyKind, TableInfo, TableNotFound, resolve_table
from bastion.jobs.runners import JobCancelled, JobFailed, Progress
from bastion.jobs.services import job_path
from bastion.transfer import convert, sources
from bastion.transfer.writers import CONFLICT_MODES, CopyWriter, RowRefused, Writer, writer_for

IMPORTED = "import.table"
BATCH_ROWS = 2000
UNEXPECTED = "The import stopped on an unexpected error (the log has the details); nothing was written."
_TRANSACTIONAL_MYSQL_ENGINES = frozenset({"innodb", "aria", "rocksdb", "tokudb", "ndbcluster"})


class ImportRefused(Exception):
    """The import cannot run as set up; ``str()`` says why. Nothing was written."""


@dataclass(frozen=True)
class Mapping:
    """Which file column goes into which table column, and how conflicts and empty cells are handled."""

    pairs: tuple[tuple[int, str], ...]  # (position in the file's columns, table column)
    conflict: str = "fail"
    options: convert.Options = field(default_factory=convert.Options)

    @property
    def columns(self) -> list[str]:
        return [name for _, name in self.pairs]

    def as_params(self) -> dict[str, Any]:
        return {"mapping": [list(pair) for pair in self.pairs], "conflict": self.conflict,
                "empty_as_null": self.options.empty_as_null, "restore_formulas": self.options.restore_formulas}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Mapping:
        return cls(tuple((int(position), str(name)) for position, name in params["mapping"]),
                   str(params.get("conflict", "fail")),
                   convert.Options(empty_as_null=bool(params.get("empty_as_null", True)),
                                   restore_formulas=bool(params.get("restore_formulas", False))))


def key_of(info: TableInfo) -> tuple[str, ...]:
    """The columns that say whether a row is already there (skip/update): the primary or unique key."""
    return info.key if info.key_kind in (KeyKind.PRIMARY, KeyKind.UNIQUE) else ()


def mapping_problems(info: TableInfo, access: TableAccess, mapping: Mapping) -> list[str]:
    """Why ``mapping`` may not be imported into ``info`` by a user with ``access`` (empty: it may)."""
    problems = []
    if Action.IMPORT not in access.actions:
        problems.append("Your role may not import into this table.")
    if info.is_view:
        problems.append("Rows cannot be imported into a view.")
    if not mapping.pairs:
        problems.append("Choose at least one column to import.")
    if mapping.conflict not in CONFLICT_MODES:
        problems.append("Choose what happens when a row's key already exists.")
    names = mapping.columns
    if len(set(names)) != len(names):
        problems.append("Each table column can take one file column only.")
    for name in names:
        view = access.columns.get(name)
        if info.column(name) is None or view is None or view.mode == ColumnMode.HIDDEN:
            problems.append(f"The table has no column {name!r}.")
        elif view.mode != ColumnMode.VISIBLE:  # as on the row forms: a value the user cannot see is not written
            problems.append(f"Your role sees column {name!r} masked, so an import may not write it.")
        elif name not in access.insertable:
            problems.append(f"Your role may not insert into column {name!r}.")
    if mapping.conflict in ("skip", "update"):
        key = key_of(info)
        if not key:
            problems.append("This table has no primary or unique key, so existing rows cannot be recognised: "
                            "choose “stop the import”.")
        elif not set(key) <= set(names):
            problems.append("To skip or update existing rows, import the key column(s): " + ", ".join(key) + ".")
    if mapping.conflict == "update":
        if info.dialect == "mysql" and any("%" in name for name in names if name not in key_of(info)):
            # SQLAlchemy writes such a name escaped twice inside ON DUPLICATE KEY UPDATE's VALUES(): the database
            # would name an unknown column.
            problems.append("On MySQL, existing rows cannot be updated through a column whose name holds “%”: "
                            "choose “stop the import” or “skip”.")
        if Action.UPDATE not in access.actions:
            problems.append("Your role may not update rows of this table, so existing rows cannot be updated.")
        for name in names:
            if name not in key_of(info) and name in access.insertable and name not in access.updatable:
                problems.append(f"Your role may not update column {name!r}.")
    return problems


def _table_label(info: TableInfo) -> str:
    return f"{info.connection.name}: {info.schema + '.' if info.schema else ''}{info.name}"


def _mysql_engine_problem(conn: Any, info: TableInfo) -> str | None:
    """MySQL tables whose storage engine cannot roll back (MyISAM, MEMORY...) would keep half an import."""
    engine = conn.execute(text(
        "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) "
        "AND TABLE_NAME = :name"), {"schema": info.schema, "name": info.name}).scalar()
    if engine and engine.lower() not in _TRANSACTIONAL_MYSQL_ENGINES:
        return (f"This table's storage engine ({engine}) cannot undo a failed import, so Bastion does not import "
                "into it. Convert it to InnoDB first.")
    return None


@dataclass
class Tally:
    """What an import has done so far (for its message and its audit event)."""

    rows: int = 0
    affected: int | None = 0
    bytes: int = 0


def run(job: Any, progress: Progress) -> str:
    """The job runner for "import" jobs (registered in apps.ready); the success message."""
    user, params = job.owner, job.params
    started = time.monotonic()
    mapping = Mapping.from_params(params)
    done = Tally()
    info: TableInfo | None = None
    try:
        info = _open_table(job)
        access = table_access(user, job.connection_id, job.schema, job.table, info.column_names)
        problems = mapping_problems(info, access, mapping)
        if problems:
            raise ImportRefused(" ".join(problems))
        # The success event is written inside the target's transaction, before its commit (as every change is).
        _import(job, info, mapping, progress, done, functools.partial(_audit, job, info, mapping, done, started, None))
    except (ImportRefused, JobFailed, JobCancelled, RowRefused, DBAPIError) as exc:
        failure = _as_failure(exc)
        _audit(job, info, mapping, done, started, failure)
        raise failure from None
    except Exception:  # the job machinery logs it; the import's event is written all the same (T33)
        _audit(job, info, mapping, done, started, JobFailed(UNEXPECTED))
        raise
    return _success_message(mapping, done)


def _open_table(job: Any) -> TableInfo:
    if not job.owner.is_active or not visible_tables(job.owner, job.connection_id, job.schema, [job.table]):
        raise ImportRefused("The table is no longer yours to import into.")
    try:
        return resolve_table(job.connection, job.schema, job.table)
    except TableNotFound:
        raise ImportRefused("The table no longer exists.") from None


def _import(job: Any, info: TableInfo, mapping: Mapping, progress: Progress, done: Tally,
            audit_success: Callable[[], None]) -> None:
    try:
        with sources.open_rows(job_path(job), sources.SourceOptions(**job.params["source"])) as source:
            _write_rows(source, info, mapping, progress, done, audit_success)
    except sources.SourceError as exc:
        raise JobFailed(str(exc), row=exc.row, reason=str(exc)) from None
    except FileNotFoundError:
        raise JobFailed("The uploaded file is no longer there: upload it again.") from None


def _write_rows(source: sources.RowSource, info: TableInfo, mapping: Mapping, progress: Progress,
                done: Tally, audit_success: Callable[[], None]) -> None:
    positions = [position for position, _ in mapping.pairs]
    if positions and max(positions) >= len(source.columns):
        raise ImportRefused("The file no longer has the columns it was mapped with.")
    columns = [info.column(name) for name in mapping.columns]
    converters = [convert.converter(c, info.dialect, mapping.options) for c in columns if c is not None]
    # The time limit is the whole import's (one transaction): statement limits alone would let an import of many
    # INSERT batches (MySQL, PostgreSQL's skip/update) hold its transaction and locks for as long as it reads.
    deadline = time.monotonic() + settings.IMPORT_TIMEOUT
    with get_engine(info.connection).connect() as conn, conn.begin():
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock now, and DDL-free all the same
        elif conn.dialect.name == "mysql" and (problem := _mysql_engine_problem(conn, info)):
            raise ImportRefused(problem)
        with limits.statement_time_limit(conn, settings.IMPORT_TIMEOUT):
            writer = writer_for(conn, info.schema, info.name, mapping.columns, key_of(info), mapping.conflict)
            try:
                _copy_rows(source, writer, converters, positions, mapping.columns, progress, done, deadline)
                writer.close()
            except BaseException:
                if isinstance(writer, CopyWriter):
                    writer.abort()
                raise
        done.affected = writer.affected
        done.bytes = source.position()
        audit_success()


def _copy_rows(source: Any, writer: Writer, converters: list[convert.Converter], positions: list[int],
               names: list[str], progress: Progress, done: Tally, deadline: float) -> None:
    for batch in source.batches(BATCH_ROWS):
        if progress.should_stop():
            raise JobCancelled()
        if time.monotonic() > deadline:
            raise JobFailed(_too_long(), reason=_too_long())
        if done.rows + len(batch) > settings.IMPORT_MAX_ROWS:
            raise ImportRefused(f"The file has more than {settings.IMPORT_MAX_ROWS:,} rows, the most one import "
                                "may write. Split it, or ask an administrator to raise BASTION_IMPORT_MAX_ROWS.")
        try:
            rows = convert.convert_batch(batch, converters, positions)
        except convert.BatchError as exc:
            raise JobFailed(str(exc), row=done.rows + exc.row + 1,
                            column=names[exc.column], reason=str(exc)) from None
        try:
            writer.write(rows)
        except RowRefused as exc:
            raise _refused_row(exc) from None
        done.rows += len(batch)
        progress.update(done.rows, source.position())


def _refused_row(exc: RowRefused) -> JobFailed:
    row = exc.index + 1 if exc.index is not None else None
    return JobFailed(str(exc), row=row, column=exc.column, reason=str(exc))


def _as_failure(exc: BaseException) -> JobFailed | JobCancelled:
    if isinstance(exc, JobFailed | JobCancelled):
        return exc
    if isinstance(exc, RowRefused):
        return _refused_row(exc)
    if isinstance(exc, DBAPIError):
        reason = _too_long() if limits.is_timeout(exc) else f"The database refused the import: {engine_reason(exc)}"
        return JobFailed(reason, reason=reason)
    return JobFailed(str(exc), reason=str(exc))


def _too_long() -> str:
    return f"The import took longer than {settings.IMPORT_TIMEOUT:,} seconds (BASTION_IMPORT_TIMEOUT) and was stopped."


def _success_message(mapping: Mapping, done: Tally) -> str:
    rows = f"{done.rows:,} row{'s' if done.rows != 1 else ''}"
    if mapping.conflict == "skip" and done.affected is not None:
        return f"Imported {rows}: {done.affected:,} new, {done.rows - done.affected:,} already there (skipped)."
    if mapping.conflict == "skip":
        return f"Imported {rows}; rows whose key was already there were skipped."
    if mapping.conflict == "update":
        return f"Imported {rows}: new rows inserted, existing ones updated."
    return f"Imported {rows}."


def _audit(job: Any, info: TableInfo | None, mapping: Mapping, done: Tally, started: float,
           failure: JobFailed | JobCancelled | None) -> None:
    if isinstance(failure, JobCancelled):
        message = "cancelled; nothing was written"
    elif failure is not None:
        message = failure.message
    else:
        message = ""
    record(IMPORTED, actor=job.owner, target=_table_label(info) if info else job.table,
           outcome=Outcome.FAILURE if failure else Outcome.SUCCESS, details={
               "connection_id": job.connection_id, "schema": job.schema, "table": job.table, "job": str(job.pk),
               "file": job.params.get("original_name", ""), "format": job.params.get("source", {}).get("format"),
               "columns": mapping.columns, "conflict": mapping.conflict, "rows": done.rows,
               "affected": done.affected, "bytes": done.bytes or job.bytes_total,
               "elapsed_ms": round((time.monotonic() - started) * 1000, 1), "message": message,
               "row": getattr(failure, "row", None), "column": getattr(failure, "column", "")})
