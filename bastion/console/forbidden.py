"""What nobody may run through the console, whatever their grants, and which functions Bastion can vouch for
(T21, T22, T31).

Some statements reach the database server's files, programs or processes, end the one
transaction Bastion wraps a script in, change the session (which could lift the console's
time limit), or run SQL that only exists at run time (dynamic SQL, functions that run a query
given as text). No grant makes them safe, so they are refused for everybody. They are looked for
in a statement's tokens, which hold even what sqlglot's parser keeps opaque, and in its parsed
tree, which sees a function however its name is quoted or qualified; the body of a trigger,
routine or DO block is searched statement by statement, down into SQL held in strings.

Every other function call is either one Bastion knows does nothing but compute a value from its
arguments, or one it cannot vouch for (see :func:`unchecked_call`): a user-defined function runs
any SQL it likes with the login's rights, so a statement calling one is not verified.
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
# Dynamic SQL: the statement it runs is built at run time, out of Bastion's sight. Refused at the top; inside a
# body, see _dynamic_sql.
_DYNAMIC = ("Dynamic SQL (PREPARE, EXECUTE, EXECUTE IMMEDIATE) is built at run time, so Bastion cannot check it "
            "and the console does not run it.")
_DYNAMIC_RULES: tuple[tuple[tuple[str, ...], str], ...] = tuple(
    (words, _DYNAMIC) for words in (("EXECUTE",), ("PREPARE",), ("DEALLOCATE",), ("DROP", "PREPARE")))
_ESCAPED_CODE = ("Bastion reads the SQL of a DO block or routine body only from a plain '...' or $$ ... $$ string, "
                 "not from an E'...' or U&'...' string, so the console does not run it.")
_UNICODE_NAME = ('PostgreSQL reads the escapes of a U&"..." name, Bastion does not, so the console does not run '
                 "statements that use one: write the name plainly.")
_CODE_STRING_DEPTH = 4  # SQL in a string in a string ... is followed this deep (quotes double at each level)
_TOO_DEEP_CODE = (f"Bastion follows SQL held in strings (DO, EXECUTE '...') {_CODE_STRING_DEPTH} levels deep, no "
                  "deeper, so the console does not run SQL nested deeper than that.")
_BODY_STATEMENT_STARTS = frozenset({"BEGIN", "ATOMIC", "THEN", "ELSE", "DO", "LOOP", "REPEAT"})

_FORBIDDEN_FUNCTION = ("The function {name}() reaches the database server's files, programs, configuration or "
                       "other sessions, so the console does not run it.")
_SQL_IN_TEXT = ("The function {name}() runs SQL given to it as text, or reads whole tables by name, which Bastion "
                "cannot check, so the console does not run it.")
_OTHER_SESSIONS = "The function {name}() shows what other sessions are running, so the console does not run it."
_FORBIDDEN_FUNCTIONS: dict[str, dict[str, str]] = {
    "sqlite": dict.fromkeys(("load_extension", "readfile", "writefile", "fts3_tokenizer", "edit", "fsdir"),
                            _FORBIDDEN_FUNCTION),
    "postgresql": {
        **dict.fromkeys((
            "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "lo_import", "lo_export", "loread",
            "lowrite", "dblink", "pg_file_write", "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf",
            "pg_rotate_logfile", "set_config", "pg_promote"), _FORBIDDEN_FUNCTION),
        **dict.fromkeys(("ts_stat", "ts_rewrite"), _SQL_IN_TEXT),  # ts_stat('SELECT ...'), ts_rewrite(q, 'SELECT ...')
        **dict.fromkeys(("pg_stat_get_activity", "pg_stat_statements"), _OTHER_SESSIONS),
    },
    "mysql": dict.fromkeys(("load_file", "sys_exec", "sys_eval", "sys_bineval"), _FORBIDDEN_FUNCTION),
}
_FORBIDDEN_FUNCTION_PREFIXES: dict[str, tuple[tuple[str, str], ...]] = {
    "postgresql": (
        *((prefix, _FORBIDDEN_FUNCTION) for prefix in ("lo_", "dblink_", "pg_ls_", "pg_read_", "pg_file_")),
        # query_to_xml, query_to_xmlschema, query_to_xml_and_xmlschema, table_to_xml..., cursor_to_xml...
        *((prefix, _SQL_IN_TEXT) for prefix in ("query_to_xml", "table_to_xml", "schema_to_xml", "database_to_xml",
                                                "cursor_to_xml")),
        ("pg_stat_get_backend", _OTHER_SESSIONS),
    ),
}

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
    message = _FORBIDDEN_FUNCTIONS[dialect].get(folded) or next(
        (message for prefix, message in _FORBIDDEN_FUNCTION_PREFIXES.get(dialect, ()) if folded.startswith(prefix)),
        None)
    return message.format(name=name) if message else None


def forbidden_at_top(tokens: list[Token], dialect: str) -> str | None:
    """What the statement's own tokens show nobody may run: its opening, psql commands, MySQL file output."""
    words = leading_words(tokens)
    reason = _rule_for(words, (*_SERVER_RULES, *_SESSION_RULES, *_DYNAMIC_RULES))
    if reason is None and words[:1] == ["PRAGMA"]:
        reason = _pragma_reason(tokens[1:])
    if reason is None and any(token.token_type == TokenType.BACKSLASH for token in tokens):
        reason = _BACKSLASH
    if reason is None and dialect == "mysql":
        reason = _into_file(tokens) or _executable_comment(tokens)
    if reason is None and dialect == "postgresql":
        reason = _unicode_name(tokens)
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


def _unicode_name(tokens: Sequence[Token]) -> str | None:
    """PostgreSQL's U&"d\\0061t" names, which sqlglot reads as U & "d\\0061t": the escapes would hide a name
    (a forbidden function's, say) from every check here."""
    for u, amp, name in zip(tokens, tokens[1:], tokens[2:], strict=False):
        if (u.text in ("U", "u") and amp.token_type == TokenType.AMP and name.token_type == TokenType.IDENTIFIER
                and amp.start == u.end + 1 and name.start == amp.end + 1):
            return _UNICODE_NAME
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
    a forbidden call, MySQL file output, dynamic SQL; SQL held in strings ($$ ... $$, EXECUTE '...') is read too."""
    reason = (_forbidden_opening_inside(tokens) or forbidden_call(tokens, dialect_name)
              or (_into_file(tokens) if dialect_name == "mysql" else None)
              or _dynamic_sql(tokens, dialect_name) or _escaped_code(tokens, dialect_name)
              or (_unicode_name(tokens) if dialect_name == "postgresql" else None))
    if reason:
        return reason
    if depth >= _CODE_STRING_DEPTH:
        return _TOO_DEEP_CODE if any(_code_strings(tokens, dialect_name)) else None
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


_PLAIN_CODE_STRINGS = frozenset({TokenType.STRING, TokenType.HEREDOC_STRING})
_AFTER_EXECUTED_LITERAL = frozenset({"INTO", "USING", "LOOP"})  # EXECUTE 'sql' [INTO x] [USING v]; FOR r IN ...
_NOT_DYNAMIC_AFTER = frozenset({"FUNCTION", "PROCEDURE", "ON"})  # EXECUTE FUNCTION f() of a trigger; GRANT EXECUTE ON


def _dynamic_sql(tokens: list[Token], dialect: str) -> str | None:
    """Dynamic SQL anywhere in a body: EXECUTE (in PostgreSQL, unless of one plain string, which
    _code_strings hands on to be read) and PREPARE name FROM/AS ... (MySQL's PREPARE s FROM @sql)."""
    padded = [None, *tokens, None, None]
    for previous, token, following, after in zip(padded, padded[1:], padded[2:], padded[3:], strict=False):
        word = word_of(token)
        if word == "PREPARE" and following is not None and after is not None and (
                word_of(after) in ("FROM", "AS") or after.token_type == TokenType.L_PAREN):
            return _DYNAMIC
        if word != "EXECUTE" or (following is not None and word_of(following) in _NOT_DYNAMIC_AFTER) or (
                previous is not None and word_of(previous) in ("GRANT", "REVOKE")):
            continue
        one_literal = (dialect == "postgresql" and following is not None
                       and following.token_type in _PLAIN_CODE_STRINGS
                       and (after is None or after.token_type == TokenType.SEMICOLON
                            or word_of(after) in _AFTER_EXECUTED_LITERAL))
        if not one_literal:
            return _DYNAMIC
    return None


def _code_positions(tokens: list[Token], dialect: str) -> Iterator[Token]:
    """Strings that hold SQL: dollar-quoted bodies, and strings after DO, EXECUTE or (PostgreSQL) AS."""
    code_after = {"DO", "EXECUTE", "AS"} if dialect == "postgresql" else {"DO", "EXECUTE"}
    for previous, token in itertools.pairwise([None, *tokens]):
        if token.token_type == TokenType.HEREDOC_STRING or (
                token.token_type in STRING_TOKENS and previous is not None and word_of(previous) in code_after):
            yield token


def _code_strings(tokens: list[Token], dialect: str) -> Iterator[str]:
    """The SQL in plain strings at code positions (escaped ones are refused, see _escaped_code)."""
    for token in _code_positions(tokens, dialect):
        if token.token_type in _PLAIN_CODE_STRINGS:
            yield token.text


def _escaped_code(tokens: list[Token], dialect: str) -> str | None:
    """PostgreSQL SQL in an E'...' or U&'...' string: its escapes are PostgreSQL's to read, not Bastion's."""
    if dialect != "postgresql":
        return None
    if any(token.token_type not in _PLAIN_CODE_STRINGS for token in _code_positions(tokens, dialect)):
        return _ESCAPED_CODE
    return None


def forbidden_in_tree(tree: exp.Expr, dialect: str) -> str | None:
    """A forbidden function called anywhere in the tree, however its name is quoted or qualified."""
    for function in tree.find_all(exp.Func):
        name = function.name if isinstance(function, exp.Anonymous) else function.sql_name()
        reason = _forbidden_function(name, dialect)
        if reason:
            return reason
    return None


# --- Functions Bastion can vouch for ------------------------------------------------------------
#
# A function sqlglot knows (exp.Upper, exp.Coalesce, ...) computes a value from its arguments, whose columns
# the analysis sees. A call sqlglot does not know (exp.Anonymous) may be a user-defined function, which runs
# any SQL it likes with the login's rights, so it leaves the statement unverified, except the built-ins below.
# They are the common PostgreSQL, MySQL/MariaDB and SQLite built-ins that sqlglot 30.30 parses as
# exp.Anonymous and that only compute a value: none changes anything, none takes SQL text or a table's name,
# none reaches other sessions. Left out on purpose: catalogue look-ups by name (to_regclass,
# pg_relation_size, has_table_privilege, pg_get_viewdef, obj_description, format_type, pg_get_userbyid ...),
# locks that outlive the transaction (pg_advisory_lock, GET_LOCK ...), notifications and session state
# (pg_notify, setseed, txid_current), BENCHMARK, extension functions (uuid_generate_v4), and sequence changes
# (_SEQUENCE_CHANGES). A name here is matched without regard to case, except a quoted PostgreSQL name, which
# must be written in lower case (PostgreSQL's "Format"() is not format()).
_VERIFIED_FUNCTIONS: dict[str, frozenset[str]] = {
    "postgresql": frozenset({
        # numbers and text
        "gcd", "lcm", "min_scale", "scale", "trim_scale", "octet_length", "convert_from", "convert_to", "unistr",
        "quote_ident", "quote_literal", "quote_nullable", "regexp_match", "regexp_matches", "regexp_split_to_array",
        "regexp_split_to_table", "string_to_table", "sha224", "get_byte", "set_byte", "bit_count", "crc32",
        # arrays
        "array_dims", "array_fill", "array_lower", "array_upper", "array_ndims", "array_positions", "array_replace",
        "array_sample", "array_shuffle", "cardinality", "trim_array", "generate_subscripts",
        # dates and times
        "age", "clock_timestamp", "statement_timestamp", "transaction_timestamp", "timeofday", "isfinite",
        "make_date", "make_timestamptz",
        # JSON
        "to_json", "to_jsonb", "row_to_json", "array_to_json", "json_build_array", "json_build_object",
        "jsonb_build_array", "jsonb_build_object", "jsonb_object", "jsonb_agg", "json_typeof", "jsonb_typeof",
        "json_array_length", "jsonb_array_length", "json_array_elements", "json_array_elements_text",
        "jsonb_array_elements", "jsonb_array_elements_text", "json_each", "json_each_text", "jsonb_each",
        "jsonb_each_text", "json_object_keys", "jsonb_object_keys", "jsonb_extract_path", "jsonb_extract_path_text",
        "json_populate_record", "jsonb_populate_record", "json_to_record", "jsonb_to_record", "jsonb_set",
        "jsonb_set_lax", "jsonb_insert", "jsonb_concat", "jsonb_pretty", "jsonb_strip_nulls", "jsonb_path_exists",
        "jsonb_path_match", "jsonb_path_query", "jsonb_path_query_array", "jsonb_path_query_first",
        # full text search (not ts_stat or ts_rewrite, which run SQL given as text and are forbidden)
        "to_tsvector", "to_tsquery", "plainto_tsquery", "phraseto_tsquery", "websearch_to_tsquery", "ts_rank",
        "ts_rank_cd", "ts_headline", "setweight", "strip", "numnode", "querytree", "tsvector_to_array",
        "array_to_tsvector",
        # XML (not query_to_xml and its kind, which are forbidden)
        "xmlagg", "xmlattributes", "xmlconcat", "xmlforest", "xmlparse", "xpath", "xpath_exists", "xml_is_well_formed",
        # row, range, geometry and network values
        "row", "int4range", "int8range", "numrange", "tsrange", "tstzrange", "daterange", "isempty", "lower_inc",
        "upper_inc", "lower_inf", "upper_inf", "range_merge", "point", "line", "lseg", "box", "path", "polygon",
        "circle", "area", "center", "radius", "diameter", "height", "width", "family", "masklen", "netmask",
        "broadcast",
        # this session, sizes, types; sleeping is bounded by the console's time limit
        "current_setting", "pg_backend_pid", "pg_typeof", "pg_column_size", "pg_size_pretty", "pg_size_bytes",
        "num_nonnulls", "num_nulls", "pg_conf_load_time", "pg_postmaster_start_time", "inet_client_addr",
        "pg_sleep", "pg_sleep_for", "every", "uuidv4", "uuidv7",
        # reading a sequence's last value changes nothing
        "currval", "lastval",
    }),
    "mysql": frozenset({
        # VALUES(col) of ON DUPLICATE KEY UPDATE (the row being inserted); ROW(...) of VALUES ROW(...)
        "values", "row",
        # numbers and text
        "bin", "oct", "conv", "crc32", "ord", "mid", "quote", "strcmp", "field", "find_in_set", "export_set",
        "make_set", "weight_string", "octet_length", "natural_sort_key", "sformat", "random_bytes", "uncompress",
        "uncompressed_length", "inet_aton", "inet_ntoa", "inet6_aton", "inet6_ntoa", "is_ipv4", "is_ipv6", "is_uuid",
        "uuid_short", "charset", "coercibility", "extractvalue", "updatexml",
        # dates and times
        "now", "sysdate", "adddate", "subdate", "addtime", "subtime", "timediff", "makedate", "microsecond",
        "period_add", "period_diff", "sec_to_time", "time_to_sec", "to_seconds", "from_days", "get_format",
        "unix_timestamp", "weekday", "yearweek",
        # JSON
        "json_array", "json_arrayagg", "json_compact", "json_contains", "json_contains_path", "json_depth",
        "json_detailed", "json_exists", "json_insert", "json_length", "json_loose", "json_merge", "json_merge_patch",
        "json_merge_preserve", "json_overlaps", "json_pretty", "json_query", "json_quote", "json_replace",
        "json_search", "json_unquote", "json_valid",
        # MariaDB dynamic columns
        "column_create", "column_exists", "column_get", "column_json", "column_list",
        # this session; sleeping is bounded by the console's time limit
        "user", "system_user", "connection_id", "found_rows", "row_count", "sleep",
        # MariaDB: reading a sequence's last value changes nothing
        "lastval",
    }),
    "sqlite": frozenset({
        "date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff", "printf", "quote",
        "octet_length", "likelihood", "likely", "unlikely", "randomblob", "zeroblob", "total", "percentile",
        "json", "json_array", "json_array_length", "json_error_position", "json_insert", "json_patch",
        "json_pretty", "json_quote", "json_replace", "json_valid", "jsonb", "jsonb_array", "jsonb_insert",
        "jsonb_object", "jsonb_patch", "jsonb_remove", "jsonb_replace", "jsonb_set",
        "changes", "total_changes", "last_insert_rowid", "sqlite_source_id", "sqlite_compileoption_get",
        "sqlite_compileoption_used", "sqlite_offset",
    }),
}
# Vouched for only when called without arguments: MySQL's LAST_INSERT_ID(expr) sets what the next call returns.
_VERIFIED_WITHOUT_ARGUMENTS: dict[str, frozenset[str]] = {"mysql": frozenset({"last_insert_id"})}
# Sequences are not transactional: what these do stays even when the run is rolled back (PostgreSQL, MariaDB).
_SEQUENCE_CHANGES = frozenset({"nextval", "setval"})
_SEQUENCE_CHANGE = ("{call} changes a sequence, and a sequence stays changed even when Bastion rolls the run back, "
                    "so Bastion cannot treat it as a read.")
_UNCHECKED_FUNCTION = 'Bastion cannot check what the function "{name}" does.'


def unchecked_call(tree: exp.Expr, tokens: Sequence[Token], dialect: Dialect, dialect_name: str) -> str | None:
    """Why a function the statement calls keeps Bastion from vouching for it; None when it can vouch for all.

    Every call sqlglot does not know must be in _VERIFIED_FUNCTIONS; a call qualified by a schema is a
    user-defined function, except PostgreSQL's pg_catalog; a quoted PostgreSQL name sqlglot took for a
    function it knows ("Upper"(x)) is seen only in the tokens, as the tree lost its quotes.
    """
    for function in tree.find_all(exp.Func):
        if isinstance(function, exp.NextValueFor):
            return _SEQUENCE_CHANGE.format(call="NEXT VALUE FOR")
        if isinstance(function, exp.Anonymous):
            reason = _anonymous_call(function, dialect, dialect_name)
            if reason:
                return reason
    if dialect_name == "postgresql":
        for token, following in itertools.pairwise(tokens):
            if (token.token_type == TokenType.IDENTIFIER and following.token_type == TokenType.L_PAREN
                    and token.text != token.text.lower() and _known_to_sqlglot(token.text, dialect)):
                return _UNCHECKED_FUNCTION.format(name=token.text)
    return None


def _anonymous_call(function: exp.Anonymous, dialect: Dialect, dialect_name: str) -> str | None:
    name = function.name
    quoted = isinstance(function.this, exp.Identifier) and function.this.quoted
    folded = name if quoted and dialect_name == "postgresql" else name.casefold()
    qualifier = function.parent.this if isinstance(function.parent, exp.Dot) and \
        function.parent.expression is function else None
    if qualifier is not None:
        in_catalog = (dialect_name == "postgresql" and isinstance(qualifier, exp.Identifier)
                      and (qualifier.name if qualifier.quoted else qualifier.name.casefold()) == "pg_catalog")
        if not in_catalog:
            return _UNCHECKED_FUNCTION.format(name=f"{qualifier.sql(dialect=dialect)}.{name}")
        if _known_to_sqlglot(folded, dialect):  # pg_catalog.upper(x): a built-in sqlglot knows unqualified
            return None
    if folded in _SEQUENCE_CHANGES:
        return _SEQUENCE_CHANGE.format(call=f"{name}()")
    if folded in _VERIFIED_FUNCTIONS[dialect_name] or (
            folded in _VERIFIED_WITHOUT_ARGUMENTS.get(dialect_name, ()) and not function.expressions):
        return None
    return _UNCHECKED_FUNCTION.format(name=name)


def _known_to_sqlglot(name: str, dialect: Dialect) -> bool:
    """Whether sqlglot parses an unqualified call of ``name`` as a function it knows."""
    parser = dialect.parser_class
    return name.upper() in parser.FUNCTIONS or name.upper() in parser.FUNCTION_PARSERS
