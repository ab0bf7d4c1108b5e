"""What nobody may run through the console, whatever their grants (T21, T22).

Some statements reach the database server's files, programs or processes, end the one
transaction Bastion wraps a script in, or change the session (which could lift the console's
time limit). No grant makes them safe, so they are refused for everybody. They are looked for
in a statement's tokens, which hold even what sqlglot's parser keeps opaque, and in its parsed
tree, which sees a function however its name is quoted or qualified; the body of a trigger,
routine or DO block is searched statement by statement, down into SQL held in strings.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

from bastion.console.splitting import STRING_TOKENS, expanded, leading_words, word_of

_FILES = "{what} reads or writes files on the database server, so the console does not run it."
_SERVER = "{what} acts on the database server itself or on other sessions, so the console does not run it."
_TRANSACTION = ("Bastion runs the whole script in one transaction and commits it, or rolls it back on the "
                "first error, itself: leave out BEGIN, COMMIT, ROLLBACK, SAVEPOINT and the like.")
_SESSION = ("SET, RESET and USE change the database session (and could lift the console's time limit), "
            "so the console does not run them.")

# Statement openings that reach the server's files, programs or processes: refused at the start of a
# statement and at the start of every statement inside a routine's or trigger's body.
_SERVER_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("ATTACH",), _FILES.format(what="ATTACH")),
    (("DETACH",), "DETACH belongs with ATTACH, which the console does not run."),
    (("VACUUM",), "VACUUM rewrites database files (VACUUM INTO writes a copy anywhere on the server) and "
                  "cannot run inside the console's transaction, so the console does not run it."),
    (("COPY",), "COPY reads and writes files or runs programs on the database server, so the console does "
                "not run it."),
    (("LOAD",), _FILES.format(what="LOAD (LOAD DATA, LOAD XML, PostgreSQL's LOAD)")),
    (("SHUTDOWN",), _SERVER.format(what="SHUTDOWN")),
    (("RESTART",), _SERVER.format(what="RESTART")),
    (("KILL",), _SERVER.format(what="KILL")),
    (("ALTER", "SYSTEM"), _SERVER.format(what="ALTER SYSTEM")),
    (("INSTALL",), _SERVER.format(what="INSTALL")),
    (("UNINSTALL",), _SERVER.format(what="UNINSTALL")),
)
# Statement openings that would break the one transaction or change the session: refused at the top.
_SESSION_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    *((words, _TRANSACTION) for words in (
        ("BEGIN",), ("START", "TRANSACTION"), ("COMMIT",), ("END",), ("ROLLBACK",), ("ABORT",),
        ("SAVEPOINT",), ("RELEASE",), ("PREPARE", "TRANSACTION"), ("XA",), ("SET", "TRANSACTION"),
        ("SET", "AUTOCOMMIT"), ("LOCK", "TABLES"), ("UNLOCK", "TABLES"))),
    (("SET",), _SESSION),
    (("RESET",), _SESSION),
    (("USE",), _SESSION),
)
_CODE_STRING_DEPTH = 4  # SQL in a string in a string ... is followed this deep (quotes double at each level)
_BODY_STATEMENT_STARTS = frozenset({"BEGIN", "ATOMIC", "THEN", "ELSE", "DO", "LOOP", "REPEAT"})

_FORBIDDEN_FUNCTIONS = {
    "sqlite": frozenset({"load_extension", "readfile", "writefile", "fts3_tokenizer", "edit", "fsdir"}),
    "postgresql": frozenset({
        "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "lo_import", "lo_export", "loread",
        "lowrite", "dblink", "pg_file_write", "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf",
        "pg_rotate_logfile", "set_config", "pg_promote"}),
    "mysql": frozenset({"load_file", "sys_exec", "sys_eval", "sys_bineval"}),
}
_FORBIDDEN_FUNCTION_PREFIXES = {"postgresql": ("lo_", "dblink_", "pg_ls_", "pg_read_", "pg_file_")}
_FORBIDDEN_FUNCTION = ("The function {name}() reaches the database server's files, programs, configuration or "
                       "other sessions, so the console does not run it.")

# SQLite pragmas whose parenthesised argument names what to report on rather than setting a value.
_QUERYING_PRAGMAS = frozenset({
    "table_info", "table_xinfo", "table_list", "index_info", "index_xinfo", "index_list", "foreign_key_list",
    "foreign_key_check", "integrity_check", "quick_check"})
_PRAGMA_SETS = ("PRAGMA statements that change a setting are not allowed in the console; reading one "
                "(PRAGMA table_info(t)) is.")
_INTO_FILE = "SELECT ... INTO OUTFILE and INTO DUMPFILE write files on the database server, so the console " \
             "does not run them."
_BACKSLASH = "Backslash commands (\\d, \\copy, ...) belong to the psql client, not to SQL, so the console does " \
             "not run them."
_EXECUTABLE_COMMENT = ("MySQL runs the text of /*! ... */ comments as SQL, which Bastion cannot check: write it "
                       "without the comment markers.")


def _rule_for(words: Sequence[str], rules: Iterable[tuple[tuple[str, ...], str]]) -> str | None:
    return next((message for opening, message in rules if tuple(words[:len(opening)]) == opening), None)


def _forbidden_function(name: str, dialect: str) -> str | None:
    folded = name.casefold()
    if folded in _FORBIDDEN_FUNCTIONS[dialect] or folded.startswith(_FORBIDDEN_FUNCTION_PREFIXES.get(dialect, ())):
        return _FORBIDDEN_FUNCTION.format(name=name)
    return None


def forbidden_at_top(tokens: list[Token], dialect: str) -> str | None:
    """What the statement's own tokens show nobody may run: its opening, psql commands, MySQL file output."""
    words = leading_words(tokens)
    reason = _rule_for(words, (*_SERVER_RULES, *_SESSION_RULES))
    if reason is None and words[:1] == ["PRAGMA"]:
        reason = _pragma_reason(tokens[1:])
    if reason is None and any(token.token_type == TokenType.BACKSLASH for token in tokens):
        reason = _BACKSLASH
    if reason is None and dialect == "mysql":
        reason = _into_file(tokens) or _executable_comment(tokens)
    return reason


def _pragma_reason(tokens: list[Token]) -> str | None:
    """PRAGMA [schema.]name, and PRAGMA table_info(t) and its kind, only read; every other form sets."""
    if len(tokens) >= 2 and tokens[1].token_type == TokenType.DOT:
        tokens = tokens[2:]
    if len(tokens) <= 1:
        return None
    name, rest = tokens[0], tokens[1:]
    if rest[0].token_type == TokenType.L_PAREN and name.text.casefold() in _QUERYING_PRAGMAS:
        return None
    return _PRAGMA_SETS


def _into_file(tokens: list[Token]) -> str | None:
    for token, following in itertools.pairwise(tokens):
        if word_of(token) == "INTO" and word_of(following) in ("OUTFILE", "DUMPFILE"):
            return _INTO_FILE
    return None


def _executable_comment(tokens: list[Token]) -> str | None:
    for token in tokens:
        if any(comment.startswith(("!", "M!")) for comment in token.comments):
            return _EXECUTABLE_COMMENT
    return None


def forbidden_call(tokens: list[Token], dialect: str) -> str | None:
    """A forbidden function called anywhere in tokens the parser could not make sense of."""
    for token, following in itertools.pairwise(tokens):
        if following.token_type == TokenType.L_PAREN and token.token_type not in STRING_TOKENS:
            reason = _forbidden_function(token.text, dialect)
            if reason:
                return reason
    return None


def forbidden_in_body(tokens: list[Token], dialect: Dialect, dialect_name: str, depth: int = 0) -> str | None:
    """What a routine's, trigger's or DO block's body would do that nobody may: a statement opening,
    a forbidden call, MySQL file output; SQL held in strings ($$ ... $$, EXECUTE '...') is read too."""
    reason = (_forbidden_opening_inside(tokens) or forbidden_call(tokens, dialect_name)
              or (_into_file(tokens) if dialect_name == "mysql" else None))
    if reason or depth >= _CODE_STRING_DEPTH:
        return reason
    for text in _code_strings(tokens, dialect_name):
        try:
            inner = expanded(dialect.tokenize(text), text, dialect)
        except TokenError:
            continue
        reason = forbidden_in_body(inner, dialect, dialect_name, depth + 1)
        if reason:
            return reason
    return None


def _forbidden_opening_inside(tokens: list[Token]) -> str | None:
    """A server rule matched by the opening of any statement inside a body."""
    starts = [0, *(index + 1 for index, token in enumerate(tokens)
                   if token.token_type == TokenType.SEMICOLON or word_of(token) in _BODY_STATEMENT_STARTS)]
    for start in starts:
        reason = _rule_for(leading_words(itertools.islice(tokens, start, None)), _SERVER_RULES)
        if reason:
            return reason
    return None


def _code_strings(tokens: list[Token], dialect: str) -> Iterator[str]:
    """Strings that hold SQL: dollar-quoted bodies, and strings after DO, EXECUTE or (PostgreSQL) AS."""
    code_after = {"DO", "EXECUTE", "AS"} if dialect == "postgresql" else {"DO", "EXECUTE"}
    for previous, token in itertools.pairwise([None, *tokens]):
        if token.token_type == TokenType.HEREDOC_STRING or (
                token.token_type == TokenType.STRING and previous is not None and word_of(previous) in code_after):
            yield token.text


def forbidden_in_tree(tree: exp.Expr, dialect: str) -> str | None:
    """A forbidden function called anywhere in the tree, however its name is quoted or qualified."""
    for function in tree.find_all(exp.Func):
        name = function.name if isinstance(function, exp.Anonymous) else function.sql_name()
        reason = _forbidden_function(name, dialect)
        if reason:
            return reason
    return None
