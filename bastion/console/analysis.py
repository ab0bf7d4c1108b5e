"""What a console script would do, worked out from its text before any of it runs (T21, T22, T31).

The console lets a user type SQL. Before a statement runs, Bastion must know which
tables and columns it reads, what it writes, which structure it changes, and whether it
does something no console user may do (reach the server's files or programs, end the
transaction Bastion wraps the script in, change the session). This module answers those
questions with sqlglot: its tokenizer splits the script, its parser builds a tree, and its
optimizer's ``qualify`` resolves every column against the catalogue's full column lists.
Nothing here talks to a database; what the analysis knows about one comes from a
:class:`Catalog`. Splitting the script lives in :mod:`bastion.console.splitting`, and the search
for what nobody may run in :mod:`bastion.console.forbidden`; this module ties them together and
works out reads, writes and structure changes.

Whatever the analysis cannot account for is stated in ``Statement.problem`` instead of being
guessed, so the caller can refuse the statement or keep it for its most trusted users. The
database's own guards (SQLite authorizer, read-only transactions, least-privilege roles)
stay the last line of defence.

How reads are found: every INSERT, UPDATE, DELETE and MERGE in the tree is replaced by a
SELECT that reads what it reads (its RETURNING list as projections, its SET values,
conditions and source rows inside the WHERE clause), so one ``qualify`` pass over a plain
query resolves everything. Every real table is renamed to a private key under a private
schema before ``qualify`` runs, so no CTE or alias can pass for a table, and names the
catalogue spells oddly never have to be re-parsed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Literal, Protocol

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, find_all_in_scope, traverse_scope
from sqlglot.schema import MappingSchema
from sqlglot.tokens import Token, TokenType

from bastion.console.forbidden import (
    forbidden_at_top,
    forbidden_call,
    forbidden_in_body,
    forbidden_in_tree,
    unchecked_call,
)
from bastion.console.refs import TableRef
from bastion.console.splitting import AnalysisError as AnalysisError  # re-exported: the console imports it from here
from bastion.console.splitting import Piece, expanded, leading_words, pieces, word_of
from bastion.console.splitting import line_and_column as line_and_column  # re-exported, as AnalysisError

DIALECTS = {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mysql"}  # Bastion name -> sqlglot name
VIEW_DEPTH = 8  # views defined on views are followed this deep

UNKNOWN_COLUMN = 'Column "{column}" is not in any table this statement reads.'
AMBIGUOUS_COLUMN = 'Column "{column}" is ambiguous: more than one table this statement reads has it.'
UNKNOWN_TABLE = 'Unknown table "{table}".'


class Kind(StrEnum):
    """What a statement does, as far as the grants it needs are concerned."""

    READ = "read"  # SELECT, set operations, VALUES, a read-only WITH ...; also SELECT ... FOR UPDATE (unverified)
    WRITE = "write"  # INSERT, UPDATE, DELETE, MERGE, REPLACE, upserts, and anything containing one
    DDL = "ddl"  # CREATE/ALTER/DROP TABLE|VIEW|INDEX, TRUNCATE, RENAME, COMMENT ON
    OTHER = "other"  # everything else: GRANT, CREATE ROLE, PRAGMA, ANALYZE, CALL, DO, CREATE FUNCTION, ...


@dataclass(frozen=True)
class TableEntry:
    """A table or view as the catalogue knows it."""

    ref: TableRef  # the catalogue's own spelling
    columns: tuple[str, ...]  # all real columns, in order
    view_sql: str | None = None  # the SELECT that defines it, when it is a view


class Catalog(Protocol):
    """What the analysis may know about the target database: its dialect and its tables."""

    dialect: str  # "sqlite" | "postgresql" | "mysql"

    def lookup(self, schema: str | None, name: str) -> TableEntry | None:
        """The table or view ``schema.name`` (schema None: the default schema), or None.

        Names arrive as written after the dialect's identifier folding (PostgreSQL folds
        unquoted names to lower case); for SQLite and MySQL the catalogue matches without
        regard to case itself.
        """


@dataclass(frozen=True)
class Write:
    """Rows a statement inserts, updates or deletes in one table."""

    action: Literal["insert", "update", "delete"]
    table: TableRef
    columns: frozenset[str]  # columns set (catalogue spelling); all of them for INSERT without a list; empty for delete


@dataclass(frozen=True)
class Ddl:
    """A structure change to one table or view."""

    action: Literal["alter", "drop"]  # CREATE/ALTER/RENAME/COMMENT/CREATE INDEX: alter; DROP/TRUNCATE: drop
    table: TableRef  # for CREATE the new name, which need not exist yet
    drops_column: bool = False  # ALTER TABLE ... DROP [COLUMN] (the two-person rule may apply)


@dataclass(frozen=True)
class Statement:
    """One statement of a script and everything the grant check needs to know about it."""

    index: int  # 1-based position in the script
    text: str  # the statement as typed, without its semicolon and the whitespace and comments before it
    start: int  # offset of ``text`` in the script
    kind: Kind
    reads: Mapping[TableRef, frozenset[str]]  # columns read, per table or view; a table read for no column maps to {}
    via_views: Mapping[TableRef, frozenset[str]]  # columns the definitions of the views read here read themselves
    star: frozenset[TableRef]  # tables whose columns were reached through *, t.* or a whole-row reference
    writes: tuple[Write, ...]
    ddl: tuple[Ddl, ...]
    returns_rows: bool  # a query, or a statement with RETURNING
    forbidden: str | None  # why nobody may run this through the console; None when anybody might
    problem: str | None  # what the analysis could not account for; None when it accounted for everything

    @property
    def verified(self) -> bool:
        return self.problem is None


def split_script(script: str, dialect: str) -> list[tuple[int, str]]:
    """(start offset, original text) of each statement of ``script``.

    sqlglot's tokenizer for the dialect finds the separating semicolons, so semicolons in strings,
    quoted names, comments, dollar-quoted bodies and the BEGIN ... END body of a trigger or routine
    do not split. Empty statements and comments alone are dropped.
    """
    return [(piece.start, piece.text) for piece in pieces(script, _dialect(dialect), dialect)]


def analyse(script: str, catalog: Catalog) -> list[Statement]:
    """Every statement of ``script``, analysed against ``catalog``.

    A statement the analysis cannot understand gets ``problem`` set; only a script that cannot
    be split at all raises :class:`AnalysisError`.
    """
    analyser = _Analyser(script, catalog)
    statements = pieces(script, analyser.dialect, analyser.name)
    return [analyser.statement(index, piece) for index, piece in enumerate(statements, 1)]


# --- Dialects ---------------------------------------------------------------------------------


@cache
def _dialect(name: str) -> Dialect:
    """The sqlglot dialect that tokenizes and parses ``name``'s SQL."""
    return Dialect.get_or_raise(DIALECTS[name])


@cache
def _resolving_dialect(name: str) -> Dialect:
    """The dialect names are resolved with.

    MySQL compares column names without regard to case, and Bastion treats its table names the
    same way; sqlglot's MySQL leaves case to the server, so resolution asks it to fold.
    """
    if name == "mysql":
        return Dialect.get_or_raise("mysql, normalization_strategy = case_insensitive")
    return _dialect(name)


# --- Analysis ---------------------------------------------------------------------------------

_KEY_SCHEMA = "bastion"  # every real table is renamed into this schema before resolution
_WRITTEN = "bastion_written"  # meta: (schema, name) of a table as the user wrote it
_WRITE_TARGET = "bastion_write_target"  # meta: the table an INSERT/UPDATE/DELETE changes
_READS = "bastion_reads"  # the function whose arguments hold what a write reads
_WRITE_STATEMENTS = (exp.Insert, exp.Update, exp.Delete, exp.Merge)
_CHAINS = (exp.And, exp.Or, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.DPipe)  # rebalanced, see _balanced
_MAX_DEPTH = 400  # deeper trees make sqlglot's scope analysis quadratic
_TOO_DEEP = "This statement is nested too deeply for Bastion to analyse."
_CASCADE = "CASCADE also drops or empties the objects that depend on it, which Bastion cannot list."
_ROUTINE = "Bastion cannot check what the body of a trigger, function or procedure does."
_LOCKING_READ = ("FOR UPDATE, FOR SHARE and LOCK IN SHARE MODE lock the rows they read, which reading them does not "
                 "allow, so Bastion cannot treat this as a read.")


class _TooDeep(Exception):
    """The statement's tree is deeper than _MAX_DEPTH even after long operator chains were balanced."""


@dataclass(frozen=True)
class _Known:
    """A catalogue table or view, with its columns by the name the resolver folds them to."""

    entry: TableEntry
    columns: Mapping[str, str]  # folded name -> catalogue spelling

    @property
    def ref(self) -> TableRef:
        return self.entry.ref


@dataclass
class _Found:
    """What the analysis of one statement (or one view definition) has found so far."""

    reads: dict[TableRef, set[str]] = field(default_factory=dict)
    star: set[TableRef] = field(default_factory=set)
    views: dict[TableRef, _Known] = field(default_factory=dict)
    writes: list[Write] = field(default_factory=list)
    ddl: list[Ddl] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def read(self, known: _Known, columns: Iterable[str] = ()) -> None:
        self.reads.setdefault(known.ref, set()).update(columns)
        if known.entry.view_sql is not None:
            self.views[known.ref] = known

    def read_all(self, known: _Known) -> None:
        self.read(known, known.entry.columns)
        self.star.add(known.ref)

    def problem(self, message: str) -> None:
        self.problems.append(message)


class _Analyser:
    """Analyses the statements of one script against one catalogue, remembering what it looked up."""

    def __init__(self, script: str, catalog: Catalog) -> None:
        self.script = script
        self.catalog = catalog
        self.name = catalog.dialect
        self.dialect = _dialect(self.name)
        self.resolving = _resolving_dialect(self.name)
        self._known: dict[tuple[str | None, str], _Known | None] = {}
        self._definitions: dict[tuple[TableRef, int], _Found] = {}

    # Statements

    def statement(self, index: int, piece: Piece) -> Statement:
        tokens = expanded(piece.tokens, self.script, self.dialect)
        words = leading_words(tokens)
        forbidden = forbidden_at_top(tokens, self.name)
        if piece.routine or (words[:1] == ["DO"] and self.name == "postgresql"):
            forbidden = forbidden or forbidden_in_body(tokens, self.dialect, self.name)
        found = _Found()
        kind, returns_rows = Kind.OTHER, False
        tree = self._parse(piece, tokens, words, found)
        if tree is None or isinstance(tree, exp.Command):  # opaque to the parser: its tokens are all there is
            forbidden = forbidden or forbidden_call(tokens, self.name)
        if tree is not None:
            forbidden = forbidden or forbidden_in_tree(tree, self.name)
            if not piece.routine:  # a routine's body is unverified anyway (_ROUTINE), whatever it calls
                self._unverifiable(tree, tokens, found)
            try:
                kind, returns_rows = self._examine(tree, tokens, found)
            except (RecursionError, _TooDeep):
                found.problem(_TOO_DEEP)
        if piece.routine and not found.problems:
            found.problem(_ROUTINE)
        via_views = self._via_views(found)
        return Statement(
            index=index, text=piece.text, start=piece.start, kind=kind,
            reads={ref: frozenset(columns) for ref, columns in found.reads.items()},
            via_views={ref: frozenset(columns) for ref, columns in via_views.reads.items()},
            star=frozenset(found.star), writes=tuple(found.writes), ddl=tuple(found.ddl),
            returns_rows=returns_rows, forbidden=forbidden,
            problem=next(iter([*found.problems, *via_views.problems]), None),
        )

    def _unverifiable(self, tree: exp.Expr, tokens: Sequence[Token], found: _Found) -> None:
        """What the statement does beyond the reads and writes the analysis finds: calls of functions Bastion
        cannot vouch for (user-defined ones run any SQL), sequence changes, row locks."""
        reason = unchecked_call(tree, tokens, self.dialect, self.name)
        if reason:
            found.problem(reason)
        if tree.find(exp.Lock) is not None:
            found.problem(_LOCKING_READ)

    def _parse(self, piece: Piece, tokens: list[Token], words: list[str], found: _Found) -> exp.Expr | None:
        """The statement's tree, or None with the reason in ``found``."""
        parse_tokens = piece.tokens
        replace = words[:1] == ["REPLACE"] and self.name != "postgresql"
        if replace:  # REPLACE [INTO] is INSERT OR REPLACE INTO, which sqlglot reads; REPLACE it keeps opaque
            first = tokens[0]
            parse_tokens = [Token(TokenType.INSERT, "INSERT", first.line, first.col, first.start, first.end),
                            *tokens[1:]]
        try:
            # error_message_context=0: sqlglot logs the statement it keeps opaque; that text may hold secrets
            trees = self.dialect.parser(error_message_context=0).parse(parse_tokens, self.script)
        except ParseError as error:
            found.problem(_parse_problem(error))
            return None
        except (SqlglotError, RecursionError):
            found.problem("Bastion could not parse this statement.")
            return None
        if len(trees) != 1 or trees[0] is None:
            found.problem(_ROUTINE if piece.routine else "Bastion could not parse this statement as one statement.")
            return None
        tree = trees[0]
        if replace and isinstance(tree, exp.Insert):
            tree.set("alternative", "REPLACE")
        return tree

    def _examine(self, tree: exp.Expr, tokens: list[Token], found: _Found) -> tuple[Kind, bool]:
        """(kind, returns rows) of a parsed statement; reads, writes, DDL and problems go to ``found``."""
        if isinstance(tree, exp.Command):
            return self._command(tree, tokens, found), False
        if isinstance(tree, (exp.Query, exp.Values, *_WRITE_STATEMENTS)):
            return self._query_or_write(tree, found)
        if isinstance(tree, exp.Create):
            return self._create(self._prepared(tree), found), False
        if isinstance(tree, exp.Alter):
            return self._alter(self._prepared(tree), found), False
        if isinstance(tree, exp.Drop):
            return self._drop(self._prepared(tree), found), False
        if isinstance(tree, exp.TruncateTable):
            return self._truncate(self._prepared(tree), found), False
        if isinstance(tree, exp.Comment):
            return self._comment(self._prepared(tree), found), False
        if isinstance(tree, (exp.Show, exp.Describe, exp.Pragma)):
            return Kind.OTHER, True
        if not isinstance(tree, (exp.Grant, exp.Revoke, exp.Analyze, exp.Attach, exp.Detach, exp.Copy, exp.Set,
                                 exp.Use, exp.Kill, exp.Transaction, exp.Commit, exp.Rollback)):
            found.problem("Bastion does not recognise this statement.")
        return Kind.OTHER, False

    def _prepared(self, tree: exp.Expr) -> exp.Expr:
        """A copy of ``tree`` with names folded as the dialect folds them, each table remembering its
        spelling as written (the catalogue matches SQLite's and MySQL's names itself)."""
        work = tree.copy()
        if self.name == "postgresql":
            work = normalize_identifiers(work, dialect=self.dialect)
        for table in work.find_all(exp.Table):
            table.meta[_WRITTEN] = (table.text("db") or None, table.name)
        work = _balanced(normalize_identifiers(work, dialect=self.resolving))
        if _depth(work) > _MAX_DEPTH:
            raise _TooDeep
        return work

    # Queries and writes

    def _query_or_write(self, tree: exp.Expr, found: _Found) -> tuple[Kind, bool]:
        work = self._prepared(tree)
        returns_rows = not isinstance(work, _WRITE_STATEMENTS) or bool(work.args.get("returning"))
        kind = Kind.READ
        into = work.args.get("into") if isinstance(work, exp.Select) else None
        if into is not None:
            work.set("into", None)
            returns_rows = False
            if isinstance(into.this, exp.Table) and isinstance(into.this.this, exp.Identifier):
                kind = Kind.DDL  # PostgreSQL's SELECT ... INTO creates a table; MySQL's fills variables
                found.ddl.append(Ddl("alter", self._lookup(into.this, found)[0]))
        work = self._replace_writes(work, found)
        self._read(work, found)
        if found.writes and kind == Kind.READ:
            kind = Kind.WRITE
        return kind, returns_rows

    def _replace_writes(self, root: exp.Expr, found: _Found) -> exp.Expr:
        """``root`` with every INSERT/UPDATE/DELETE/MERGE (innermost first) replaced by the SELECT that
        reads what it reads; their writes go to ``found``."""
        writes = [node for node in root.find_all(*_WRITE_STATEMENTS)
                  if not isinstance(node.parent, exp.When)]
        for node in reversed(writes):
            image = self._image(node, found)
            if node is root:
                root = image
            else:
                node.replace(image)
        return root

    def _image(self, node: exp.Expr, found: _Found) -> exp.Select:
        if isinstance(node, exp.Insert):
            return self._insert_image(node, found)
        if isinstance(node, exp.Update):
            return self._update_image(node, found)
        if isinstance(node, exp.Delete):
            return self._delete_image(node, found)
        return self._merge_image(node, found)

    def _insert_image(self, node: exp.Insert, found: _Found) -> exp.Select:
        target = node.this.this if isinstance(node.this, exp.Schema) else node.this
        listed = node.this.expressions if isinstance(node.this, exp.Schema) else []
        tables = self._tables_by_alias([target], found)
        ref, known = self._target(target, tables, found)
        found.writes.append(Write("insert", ref, self._inserted_columns(listed, tables, found)))
        if node.args.get("alternative") == "REPLACE":
            found.writes.append(Write("delete", ref, frozenset()))
        reads: list[exp.Expr] = []
        if node.expression is not None:
            reads.append(exp.Subquery(this=node.expression))
        conflict = node.args.get("conflict")
        if conflict is not None and conflict.expressions:
            updated = self._assigned([a.this for a in conflict.expressions], tables, found).get(ref, set())
            found.writes.append(Write("update", ref, frozenset(updated)))
            row_alias = self._inserted_row_alias(node)
            for assignment in conflict.expressions:
                reads.append(self._without_row_references(assignment.expression, row_alias, known, found))
            if conflict.args.get("where") is not None:
                reads.append(self._without_row_references(conflict.args["where"].this, row_alias, known, found))
        return self._select_image(node, target, [], reads, targets=[target])

    def _inserted_row_alias(self, node: exp.Insert) -> str | None:
        """The name an upsert's update uses for the row being inserted (excluded, or MySQL's VALUES ... AS)."""
        if self.name == "mysql":
            return (node.expression.alias or None) if node.expression is not None else None
        return "excluded"

    def _without_row_references(self, expression: exp.Expr, alias: str | None, known: _Known | None,
                                found: _Found) -> exp.Expr:
        """``expression`` with references to the row being inserted checked and replaced by NULL: they read
        the user's own values, not the table."""
        if alias is None:
            return expression
        for column in list(expression.find_all(exp.Column)):
            if column.table == alias:
                if known is not None and column.name not in known.columns:
                    found.problem(_unknown_column(column.name))
                if column is expression:
                    return exp.null()
                column.replace(exp.null())
        return expression

    def _update_image(self, node: exp.Update, found: _Found) -> exp.Select:
        target = node.this
        joins = _joins_of(target)
        from_ = node.args.get("from_")
        if from_ is not None:
            joins += [exp.Join(this=from_.this), *_joins_of(from_.this)]
        joined = [join.this for join in joins]
        tables = self._tables_by_alias([target, *joined], found)
        assigned = self._assigned([a.this for a in node.expressions], tables, found, default=target.alias_or_name)
        for ref, columns in assigned.items():
            found.writes.append(Write("update", ref, frozenset(columns)))
        written = [table for table in (target, *joined) if tables.get(table.alias_or_name, (None,))[0] in assigned]
        reads = [assignment.expression for assignment in node.expressions]
        return self._select_image(node, target, joins, [*reads, *_where_and_order(node)], targets=written)

    def _delete_image(self, node: exp.Delete, found: _Found) -> exp.Select:
        target = node.this
        joins = [*_joins_of(target), *(exp.Join(this=table) for table in node.args.get("using") or [])]
        joined = [join.this for join in joins]
        tables = self._tables_by_alias([target, *joined], found)
        named = [table.name for table in node.args.get("tables") or []] or [target.alias_or_name]
        deleted = [table for table in (target, *joined) if table.alias_or_name in named]
        if len(deleted) != len(named):
            found.problem("Bastion cannot tell which tables this DELETE deletes from.")
        for table in deleted:
            found.writes.append(Write("delete", tables[table.alias_or_name][0], frozenset()))
        return self._select_image(node, target, joins, _where_and_order(node), targets=deleted)

    def _merge_image(self, node: exp.Merge, found: _Found) -> exp.Select:
        target, source = node.this, node.args["using"]
        tables = self._tables_by_alias([target], found)
        ref, _ = self._target(target, tables, found)
        reads = [node.args["on"]]
        for when in node.args["whens"].expressions:
            action = when.args.get("then")
            if when.args.get("condition") is not None:
                reads.append(when.args["condition"])
            if isinstance(action, exp.Update):
                columns = self._assigned([a.this for a in action.expressions], tables, found).get(ref, set())
                found.writes.append(Write("update", ref, frozenset(columns)))
                reads += [assignment.expression for assignment in action.expressions]
            elif isinstance(action, exp.Insert):
                listed = action.this.expressions if isinstance(action.this, exp.Tuple) else []
                found.writes.append(Write("insert", ref, self._inserted_columns(listed, tables, found)))
                if action.expression is not None:
                    reads.append(action.expression)
            elif isinstance(action, exp.Var) and action.name.upper() == "DELETE":
                found.writes.append(Write("delete", ref, frozenset()))
            elif not (isinstance(action, exp.Var) and action.name.upper() == "DO NOTHING"):
                found.problem("Bastion cannot analyse this MERGE: one of its WHEN clauses is too complex.")
        return self._select_image(node, target, [exp.Join(this=source)], reads, targets=[target])

    def _select_image(self, node: exp.Expr, first: exp.Expr, joins: list[exp.Join], reads: list[exp.Expr],
                      *, targets: list[exp.Expr]) -> exp.Select:
        """SELECT <RETURNING or 1> FROM <tables> WHERE bastion_reads(<what the write reads>)."""
        for table in targets:
            table.meta[_WRITE_TARGET] = True
        returning = node.args.get("returning")
        image = exp.Select(expressions=list(returning.expressions) if returning else [exp.Literal.number(1)])
        image.set("from_", exp.From(this=first))
        image.set("joins", joins)
        if reads:
            image.set("where", exp.Where(this=exp.Anonymous(this=_READS, expressions=reads)))
        image.set("with_", node.args.get("with_"))
        return image

    def _tables_by_alias(self, tables: list[exp.Expr], found: _Found) -> dict[str, tuple[TableRef, _Known | None]]:
        result = {}
        for table in tables:
            if isinstance(table, exp.Table) and isinstance(table.this, exp.Identifier):
                ref, known = self._lookup(table, found)
                if known is None:
                    found.problem(UNKNOWN_TABLE.format(table=ref))
                result[table.alias_or_name] = (known.ref if known else ref, known)
        return result

    def _target(self, target: exp.Expr, tables: Mapping[str, tuple[TableRef, _Known | None]],
                found: _Found) -> tuple[TableRef, _Known | None]:
        """The table an INSERT or MERGE writes (a problem when it is not a plain table name)."""
        if target.alias_or_name not in tables:
            found.problem("Bastion cannot tell which table this statement writes.")
            return TableRef(None, target.alias_or_name), None
        return tables[target.alias_or_name]

    def _inserted_columns(self, listed: Sequence[exp.Expr], tables: Mapping[str, tuple[TableRef, _Known | None]],
                          found: _Found) -> frozenset[str]:
        """The columns an INSERT sets: those it lists, or all of them."""
        ref, known = next(iter(tables.values()), (None, None))
        if listed:
            return frozenset(self._assigned(listed, tables, found).get(ref, ()))
        return frozenset(known.entry.columns if known else ())

    def _assigned(self, targets: Sequence[exp.Expr], tables: Mapping[str, tuple[TableRef, _Known | None]],
                  found: _Found, default: str | None = None) -> dict[TableRef, set[str]]:
        """The columns an INSERT's list or an UPDATE's SET names, per table, in catalogue spelling."""
        result: dict[TableRef, set[str]] = {}
        for target in targets:
            columns = target.expressions if isinstance(target, exp.Tuple) else [target]
            for column in columns:
                if not isinstance(column, (exp.Column, exp.Identifier)):
                    found.problem("Bastion cannot tell which column this statement sets.")
                    continue
                owner = self._owner(column, tables, found, default)
                if owner is not None:
                    ref, known = owner
                    result.setdefault(ref, set()).add(known.columns[column.name])
        return result

    def _owner(self, column: exp.Column | exp.Identifier, tables: Mapping[str, tuple[TableRef, _Known | None]],
               found: _Found, default: str | None) -> tuple[TableRef, _Known] | None:
        """The table a set column belongs to; None (and a problem) when it is not exactly one."""
        qualifier = column.text("table") if isinstance(column, exp.Column) else ""
        if qualifier:
            candidates = [tables[qualifier]] if qualifier in tables else []
        elif default is None or len(tables) == 1 or self.name == "mysql":
            candidates = list(tables.values())  # MySQL's multi-table UPDATE may set any table it joins
        else:
            candidates = [tables[default]] if default in tables else []  # others set the target's columns only
        if any(known is None for _, known in candidates):
            return None  # the unknown table is already the problem
        having = [(ref, known) for ref, known in candidates if known is not None and column.name in known.columns]
        if len(having) == 1:
            return having[0]
        found.problem(AMBIGUOUS_COLUMN.format(column=column.name) if having else _unknown_column(column.name))
        return None

    # DDL

    def _create(self, node: exp.Expr, found: _Found) -> Kind:
        kind = (node.args.get("kind") or "").upper()
        if kind in ("TABLE", "VIEW"):
            target = node.this.this if isinstance(node.this, exp.Schema) else node.this
            ref, known = self._lookup(target, found)
            found.ddl.append(Ddl("alter", known.ref if known else ref))
            if isinstance(node.expression, (exp.Query, exp.Values)):
                self._read(self._replace_writes(node.expression, found), found)
            self._read_structure_sources(node, found)
            return Kind.DDL
        if kind == "INDEX":
            table = node.this.args.get("table") if isinstance(node.this, exp.Index) else None
            if table is None:
                found.problem("Bastion cannot tell which table this index is on.")
            else:
                self._ddl_on_existing("alter", table, found)
            return Kind.DDL
        if kind in ("FUNCTION", "PROCEDURE", "TRIGGER"):
            found.problem(_ROUTINE)
        return Kind.OTHER

    def _read_structure_sources(self, node: exp.Expr, found: _Found) -> None:
        """Foreign keys read the columns they reference (a violation tells whether a value exists there);
        CREATE TABLE ... LIKE reads every column's name and type."""
        for reference in node.find_all(exp.Reference):
            schema = reference.this
            table = schema.this if isinstance(schema, exp.Schema) else schema
            columns = [exp.column(identifier.copy()) for identifier in getattr(schema, "expressions", [])]
            self._read(exp.Select(expressions=columns or [exp.Literal.number(1)], from_=exp.From(this=table.copy())),
                       found)
        for like in node.find_all(exp.LikeProperty):
            self._read(exp.Select(expressions=[exp.Star()], from_=exp.From(this=like.this.copy())), found)

    def _alter(self, node: exp.Expr, found: _Found) -> Kind:
        kind = (node.args.get("kind") or "").upper()
        if kind not in ("TABLE", "VIEW", "INDEX"):
            return Kind.OTHER
        if kind == "INDEX":
            found.problem("ALTER INDEX does not name its table, so Bastion cannot check the grant for it.")
            return Kind.DDL
        ref = self._ddl_on_existing("alter", node.this, found)
        for action in node.args.get("actions") or []:
            if isinstance(action, (exp.Query, exp.Values)):  # MySQL's ALTER VIEW v AS SELECT ...
                self._read(self._replace_writes(action, found), found)
            if isinstance(action, exp.AlterRename):
                schema, name = self._written(action.this)
                found.ddl.append(Ddl("alter", TableRef(schema if schema is not None else ref.schema, name)))
            if any(drop.args.get("cascade") for drop in action.find_all(exp.Drop)):
                found.problem(_CASCADE)
            if isinstance(action, exp.Drop) and (action.args.get("kind") or "COLUMN").upper() == "COLUMN":
                found.ddl.append(Ddl("alter", ref, drops_column=True))
        self._read_structure_sources(node, found)
        return Kind.DDL

    def _drop(self, node: exp.Expr, found: _Found) -> Kind:
        kind = (node.args.get("kind") or "").upper()
        tables = node.args.get("tables") or [node.this]
        if kind == "INDEX":
            on = node.args.get("cluster")
            if isinstance(on, exp.OnProperty):
                self._ddl_on_existing("alter", on.this, found)
            else:
                found.problem("DROP INDEX does not name its table here, so Bastion cannot check the grant for it.")
            return Kind.DDL
        if kind not in ("TABLE", "VIEW"):
            return Kind.OTHER
        for table in tables:
            ref, known = self._lookup(table, found)
            if known is None and not node.args.get("exists"):
                found.problem(UNKNOWN_TABLE.format(table=ref))
            found.ddl.append(Ddl("drop", known.ref if known else ref))
        if node.args.get("cascade"):
            found.problem(_CASCADE)
        return Kind.DDL

    def _truncate(self, node: exp.Expr, found: _Found) -> Kind:
        for table in node.expressions:
            self._ddl_on_existing("drop", table, found)
        if str(node.args.get("option") or "").upper() == "CASCADE":
            found.problem(_CASCADE)
        return Kind.DDL

    def _comment(self, node: exp.Expr, found: _Found) -> Kind:
        kind = (node.args.get("kind") or "").upper()
        target = node.this
        if kind == "COLUMN" and isinstance(target, exp.Column):
            target = exp.Table(this=target.args.get("table"), db=target.args.get("db"))
        elif kind not in ("TABLE", "VIEW", "MATERIALIZED VIEW"):
            return Kind.OTHER
        self._ddl_on_existing("alter", target, found)
        return Kind.DDL

    def _command(self, tree: exp.Command, tokens: list[Token], found: _Found) -> Kind:
        """Statements sqlglot keeps as opaque text: MySQL's RENAME TABLE is read here; the rest is unverified."""
        words = leading_words(tokens, 2)
        if self.name == "mysql" and words in (["RENAME", "TABLE"], ["RENAME", "TABLES"]):
            self._rename_tables(tokens[2:], found)
            return Kind.DDL
        what = " ".join(words if words[:1] in (["CREATE"], ["ALTER"], ["DROP"]) else words[:1]) or tree.name.upper()
        found.problem(f"Bastion cannot analyse {what} statements.")
        return Kind.OTHER

    def _rename_tables(self, tokens: list[Token], found: _Found) -> None:
        """RENAME TABLE a TO b [, c TO d ...]: each old name must exist; both names are altered."""
        pairs = [list(group) for is_comma, group in itertools.groupby(tokens, lambda t: t.token_type == TokenType.COMMA)
                 if not is_comma]
        for pair in pairs:
            parts = [list(group) for is_to, group in itertools.groupby(pair, lambda t: word_of(t) == "TO") if not is_to]
            tables = [self._parse_table(part) for part in parts]
            if len(tables) != 2 or None in tables:
                found.problem("Bastion could not read this RENAME TABLE statement.")
                return
            old, new = tables
            ref = self._ddl_on_existing("alter", old, found)
            schema, name = self._written(new)
            found.ddl.append(Ddl("alter", TableRef(schema if schema is not None else ref.schema, name)))

    def _parse_table(self, tokens: list[Token]) -> exp.Table | None:
        try:
            tables = self.dialect.parser().parse_into(exp.Table, tokens, self.script)
        except SqlglotError:
            return None
        table = tables[0] if len(tables) == 1 else None
        return table if isinstance(table, exp.Table) else None

    def _ddl_on_existing(self, action: Literal["alter", "drop"], table: exp.Expr, found: _Found) -> TableRef:
        """Record ``action`` on a table that must exist; its reference (catalogue spelling when known)."""
        ref, known = self._lookup(table, found)
        if known is None:
            found.problem(UNKNOWN_TABLE.format(table=ref))
        else:
            ref = known.ref
        found.ddl.append(Ddl(action, ref))
        return ref

    # Names

    def _written(self, table: exp.Expr) -> tuple[str | None, str]:
        """(schema, name) as written, SQLite's "main" being the default schema (None)."""
        schema, name = table.meta.get(_WRITTEN) or (table.text("db") or None, table.name)
        if self.name == "sqlite" and schema is not None and schema.casefold() == "main":
            schema = None
        return schema, name

    def _lookup(self, table: exp.Expr, found: _Found) -> tuple[TableRef, _Known | None]:
        """The written reference of ``table`` and what the catalogue knows of it (None: nothing)."""
        schema, name = self._written(table)
        ref = TableRef(schema, name)
        if table.text("catalog"):
            found.problem(f'Bastion does not analyse table names with a database part ("{table.text("catalog")}").')
            return ref, None
        key = (schema, name)
        if key not in self._known:
            entry = self.catalog.lookup(schema, name)
            self._known[key] = None if entry is None else _Known(entry, self._folded_columns(entry))
        return ref, self._known[key]

    def _folded_columns(self, entry: TableEntry) -> dict[str, str]:
        """The catalogue's columns by the name the resolver gives them: a quoted name, as it is spelled."""
        return {self.resolving.normalize_identifier(exp.to_identifier(column, quoted=True)).name: column
                for column in entry.columns}

    # Reads

    def _read(self, query: exp.Expr, found: _Found) -> None:
        """Add what ``query`` (writes already replaced by their images) reads to ``found``."""
        try:
            scopes = traverse_scope(query)
            bound = self._bind_tables(query, scopes, found)
            if bound is None:
                return
            self._record_stars(scopes, bound, found)
            self._record_shadowed(scopes, bound, found)
        except Exception as error:  # sqlglot's scope builder raises assorted errors on odd trees
            found.problem(f"Bastion could not work out what this statement reads ({_first_line(error)}).")
            return
        tables = {key: dict.fromkeys(known.columns, "UNKNOWN") for key, (known, _) in bound.items()}
        schema = MappingSchema({_KEY_SCHEMA: tables} if tables else None, dialect=self.resolving, normalize=False)
        try:
            query = qualify(query, dialect=self.resolving, schema=schema, validate_qualify_columns=True,
                            expand_stars=True, quote_identifiers=False)
            scopes = traverse_scope(query)
        except Exception as error:  # qualify raises OptimizeError, and more on trees it does not support
            found.problem(self._diagnosis(query, bound) or
                          f"Bastion could not resolve the columns of this statement ({_first_line(error)}).")
            return
        for scope in scopes:
            self._record_scope(scope, bound, found)

    def _bind_tables(self, query: exp.Expr, scopes: list[Scope],
                     found: _Found) -> dict[str, tuple[_Known, bool]] | None:
        """Rename every real table the query reads to a private key; key -> (table, is a write target).

        None when a table is unknown or a table-valued function cannot be accounted for.
        """
        bound: dict[str, tuple[_Known, bool]] = {}
        placed: set[int] = set()
        before = len(found.problems)
        for scope in scopes:
            for node, source in scope.selected_sources.values():
                if id(node) in placed:
                    continue
                placed.add(id(node))
                if not isinstance(source, exp.Table):
                    continue
                if isinstance(source.this, exp.Anonymous):
                    found.problem(f'Bastion cannot tell what the table function "{source.this.name}" reads.')
                elif isinstance(source.this, exp.Identifier):
                    self._bind(source, bound, found)
        for table in query.find_all(exp.Table):
            if id(table) not in placed and isinstance(table.this, exp.Identifier):
                found.problem(f'Bastion cannot tell how this statement uses "{table.name}".')
        return None if len(found.problems) > before else bound

    def _bind(self, table: exp.Table, bound: dict[str, tuple[_Known, bool]], found: _Found) -> None:
        ref, known = self._lookup(table, found)
        if known is None:
            found.problem(UNKNOWN_TABLE.format(table=ref))
            return
        key = f"t{len(bound)}"
        if not table.alias:
            table.set("alias", exp.TableAlias(this=table.this.copy()))
        table.set("this", exp.to_identifier(key))
        table.set("db", exp.to_identifier(_KEY_SCHEMA))
        bound[key] = (known, bool(table.meta.get(_WRITE_TARGET)))

    def _record_stars(self, scopes: list[Scope], bound: Mapping[str, tuple[_Known, bool]], found: _Found) -> None:
        """Remember the tables ``*`` and ``t.*`` reach, before ``qualify`` expands them into columns."""
        for scope in scopes:
            if not isinstance(scope.expression, exp.Select):
                continue
            for projection in scope.expression.expressions:
                if isinstance(projection, exp.Star):
                    aliases: Iterable[str] = scope.selected_sources
                elif isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
                    aliases = [projection.table]
                else:
                    continue
                for alias in aliases:
                    known = _bound_source(scope.selected_sources.get(alias, (None, None))[1], bound)
                    if known is not None:
                        found.star.add(known.ref)

    def _record_shadowed(self, scopes: list[Scope], bound: Mapping[str, tuple[_Known, bool]], found: _Found) -> None:
        """Read the table columns that output names shadow where an engine may still mean the column.

        In ``SELECT name AS secret FROM t ORDER BY CAST(secret AS int)`` PostgreSQL sorts by the column
        t.secret (only a bare ORDER BY name means the output column), while ``qualify`` resolves ``secret``
        to the output column. So a name in an ORDER BY or DISTINCT ON expression, GROUP BY or HAVING that
        is both an output name and a column of a table the query reads is counted as a read of that
        column, on every dialect. A bare ORDER BY (DISTINCT ON) name means the output column everywhere.
        """
        for scope in scopes:
            select = scope.expression
            if not isinstance(select, exp.Select):
                continue
            outputs = {projection.alias for projection in select.expressions if isinstance(projection, exp.Alias)}
            if not outputs:
                continue
            names = {column.name for clause in _name_resolving_clauses(select) for column in clause.find_all(exp.Column)
                     if not column.table and column.name in outputs}
            for _, source in scope.selected_sources.values():
                known = _bound_source(source, bound)
                shadowed = [known.columns[name] for name in names if name in known.columns] if known else []
                if shadowed:
                    found.read(known, shadowed)

    def _record_scope(self, scope: Scope, bound: Mapping[str, tuple[_Known, bool]], found: _Found) -> None:
        for _, source in scope.selected_sources.values():
            known = _bound_source(source, bound)
            if known is not None and not bound[source.name][1]:
                found.read(known)
        for column in scope.columns:
            known = _bound_source(_source_of(scope, column.table), bound) if column.table else None
            if known is None:
                continue
            if column.name in known.columns:
                found.read(known, [known.columns[column.name]])
            else:
                found.problem(_unknown_column(column.name))
        for whole_row in scope.table_columns:  # PostgreSQL's SELECT t FROM t, row_to_json(t)
            self._read_whole(_source_of(scope, whole_row.name), bound, found)
        for star in scope.stars:  # t.* left inside an expression: row_to_json(t.*), (t.*).secret
            self._read_whole(_source_of(scope, star.text("table")), bound, found)
        for star in find_all_in_scope(scope.expression, exp.Star):
            if not isinstance(star.parent, (exp.Column, exp.Dot, exp.Count)):
                for _, source in scope.selected_sources.values():
                    self._read_whole(source, bound, found)

    def _read_whole(self, source: exp.Expr | Scope | None, bound: Mapping[str, tuple[_Known, bool]],
                    found: _Found) -> None:
        known = _bound_source(source, bound)
        if known is not None:
            found.read_all(known)

    def _diagnosis(self, query: exp.Expr, bound: Mapping[str, tuple[_Known, bool]]) -> str | None:
        """The column ``qualify`` could not resolve, in plain words (None if it cannot be told)."""
        try:
            scopes = traverse_scope(query)
        except Exception:  # best effort: the caller has a general message
            return None
        for scope in scopes:
            for column in scope.columns:
                if column.table:
                    source = _source_of(scope, column.table)
                    known = _bound_source(source, bound)
                    if source is None or (known is not None and column.name not in known.columns):
                        return UNKNOWN_COLUMN.format(column=column.name)
                    continue
                having = [alias for alias, (_, source) in scope.selected_sources.items()
                          if column.name in _output_columns(source, bound)]
                if len(having) != 1:
                    return (AMBIGUOUS_COLUMN if having else UNKNOWN_COLUMN).format(column=column.name)
        return None

    # Views

    def _via_views(self, found: _Found) -> _Found:
        """What the definitions of the views ``found`` reads read, to VIEW_DEPTH levels."""
        result = _Found()
        for known in found.views.values():
            _merge(result, self._definition(known, 1))
        return result

    def _definition(self, view: _Known, depth: int) -> _Found:
        key = (view.ref, depth)
        if key not in self._definitions:
            self._definitions[key] = self._analyse_definition(view, depth)
        return self._definitions[key]

    def _analyse_definition(self, view: _Known, depth: int) -> _Found:
        found = _Found()
        if depth > VIEW_DEPTH:
            found.problem(f"Views built on views more than {VIEW_DEPTH} levels deep are not analysed.")
            return found
        definition = _Found()
        view_sql = view.entry.view_sql or ""
        try:
            tokens = self.dialect.tokenize(view_sql)
            trees = self.dialect.parser(error_message_context=0).parse(tokens, view_sql)
        except (SqlglotError, RecursionError):
            tokens, trees = [], []
        if len(trees) != 1 or not isinstance(trees[0], (exp.Query, exp.Values)):
            definition.problem("it is not a query Bastion can parse")
        else:
            forbidden = forbidden_in_tree(trees[0], self.name)
            if forbidden:
                definition.problem(forbidden)
            self._unverifiable(trees[0], tokens, definition)
            try:
                self._read(self._prepared(trees[0]), definition)
            except (RecursionError, _TooDeep):
                definition.problem("it is nested too deeply")
        for problem in definition.problems:
            found.problem(f'Bastion cannot analyse the definition of view "{view.ref}": {problem.rstrip(".")}.')
        _merge(found, definition)
        for inner in definition.views.values():
            _merge(found, self._definition(inner, depth + 1))
        return found


def _balanced(tree: exp.Expr) -> exp.Expr:
    """``tree`` with each long chain of one operator (a OR b OR c ...) rebuilt as a balanced tree.

    sqlglot's scope analysis walks from every column up towards the root, which is quadratic in a
    chain thousands of operands long; the tree is analysed, never run, so grouping does not matter.
    """
    heads = [node for node in tree.find_all(*_CHAINS) if type(node.parent) is not type(node)]
    for head in heads:
        operands = _chain_operands(head)
        if len(operands) > 2:
            balanced = _balanced_chain(type(head), operands)
            if head is tree:
                tree = balanced
            else:
                head.replace(balanced)
    return tree


def _chain_operands(head: exp.Expr) -> list[exp.Expr]:
    operands, pending = [], [head]
    while pending:
        node = pending.pop()
        if type(node) is type(head):
            pending += [node.expression, node.this]
        else:
            operands.append(node)
    return operands


def _balanced_chain(operator: type[exp.Expr], operands: list[exp.Expr]) -> exp.Expr:
    if len(operands) == 1:
        return operands[0]
    middle = len(operands) // 2
    return operator(this=_balanced_chain(operator, operands[:middle]),
                    expression=_balanced_chain(operator, operands[middle:]))


def _depth(tree: exp.Expr) -> int:
    deepest, pending = 0, [(tree, 1)]
    while pending:
        node, depth = pending.pop()
        deepest = max(deepest, depth)
        pending += [(child, depth + 1) for child in node.iter_expressions()]
    return deepest


def _merge(into: _Found, found: _Found) -> None:
    for ref, columns in found.reads.items():
        into.reads.setdefault(ref, set()).update(columns)
    into.problems.extend(problem for problem in found.problems if problem not in into.problems)


def _bound_source(source: exp.Expr | Scope | None, bound: Mapping[str, tuple[_Known, bool]]) -> _Known | None:
    if isinstance(source, exp.Table) and source.text("db") == _KEY_SCHEMA and source.name in bound:
        return bound[source.name][0]
    return None


def _source_of(scope: Scope | None, alias: str) -> exp.Expr | Scope | None:
    """The source ``alias`` names in ``scope`` or, for a correlated reference, in an enclosing scope."""
    while scope is not None:
        if alias in scope.selected_sources:
            return scope.selected_sources[alias][1]
        scope = scope.parent
    return None


def _output_columns(source: exp.Expr | Scope, bound: Mapping[str, tuple[_Known, bool]]) -> Iterable[str]:
    known = _bound_source(source, bound)
    if known is not None:
        return known.columns
    return source.expression.named_selects if isinstance(source, Scope) and isinstance(
        source.expression, exp.Query) else ()


def _name_resolving_clauses(select: exp.Select) -> list[exp.Expr]:
    """The expressions of ``select`` where a name may mean a table column although an output has that name:
    GROUP BY and HAVING, and ORDER BY and DISTINCT ON items other than a bare name."""
    ordering = [ordered.this for ordered in select.args["order"].expressions] if select.args.get("order") else []
    distinct = select.args.get("distinct")
    on = distinct.args.get("on") if distinct is not None else None
    if on is not None:
        ordering += on.expressions if isinstance(on, exp.Tuple) else [on]
    clauses = [item for item in ordering if not (isinstance(item, exp.Column) and not item.table)]
    if select.args.get("group"):
        clauses += select.args["group"].expressions
    if select.args.get("having"):
        clauses.append(select.args["having"].this)
    return clauses


def _joins_of(table: exp.Expr) -> list[exp.Join]:
    """The joins sqlglot hangs on an UPDATE's or DELETE's first table, taken off it."""
    joins = list(table.args.get("joins") or [])
    table.set("joins", None)
    return joins


def _where_and_order(node: exp.Expr) -> list[exp.Expr]:
    """What an UPDATE's or DELETE's WHERE and (MySQL) ORDER BY read."""
    reads = []
    if node.args.get("where") is not None:
        reads.append(node.args["where"].this)
    if node.args.get("order") is not None:
        reads += [ordered.this for ordered in node.args["order"].expressions]
    return reads


def _unknown_column(name: str) -> str:
    return UNKNOWN_COLUMN.format(column=name)


def _parse_problem(error: ParseError) -> str:
    """sqlglot's parse error in plain words, placed in the whole script."""
    detail = error.errors[0] if error.errors else {}
    line, column, near = detail.get("line"), detail.get("col"), detail.get("highlight") or ""
    if not (line and column):
        return "Bastion could not parse this statement."
    if near and "\n" not in near:
        column = max(column - len(near) + 1, 1)  # sqlglot points at the end of the token
    where = f"line {line}, column {column}"
    return f'Bastion could not parse this statement near "{near}" ({where}).' if near else \
        f"Bastion could not parse this statement ({where})."


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0].rstrip(".") if str(error) else type(error).__name__
