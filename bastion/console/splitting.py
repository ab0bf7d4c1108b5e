"""Splitting a console script into statements, with sqlglot's tokenizer.

The console analyses, checks and runs a script one statement at a time, so it must split the
script where the database would: only at semicolons outside strings, quoted names, comments,
dollar-quoted bodies and the BEGIN ... END body of a trigger or routine. sqlglot's tokenizer for
the dialect knows all but the last; the BEGIN ... END nesting is followed here. Each statement
keeps its tokens, with offsets in the whole script, so that the analysis and the search for what
nobody may run read exactly what the server would, and can point into the script in messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

STRING_TOKENS = frozenset({
    TokenType.STRING, TokenType.BIT_STRING, TokenType.HEX_STRING, TokenType.BYTE_STRING,
    TokenType.NATIONAL_STRING, TokenType.NATIONAL_RAW_STRING, TokenType.RAW_STRING,
    TokenType.HEREDOC_STRING, TokenType.UNICODE_STRING,
})
_LITERAL_TOKENS = STRING_TOKENS | {TokenType.NUMBER, TokenType.IDENTIFIER}
_ROUTINES = frozenset({"TRIGGER", "FUNCTION", "PROCEDURE", "EVENT"})
_ROUTINE_PREFIXES = frozenset({"OR", "REPLACE", "TEMP", "TEMPORARY"})
_ROUTINE_HEADER_OPTIONS = frozenset({"DEFINER", "AGGREGATE", "CONSTRAINT"})
_BLOCK_ENDS_NOT_COUNTED = frozenset({"IF", "LOOP", "WHILE", "REPEAT"})  # MySQL's END IF etc. close no BEGIN


class AnalysisError(ValueError):
    """The script cannot even be split into statements (an unclosed quote or dollar-quoted body)."""


def line_and_column(script: str, offset: int) -> tuple[int, int]:
    """1-based line and column of ``offset`` in ``script``, for messages."""
    line_start = script.rfind("\n", 0, offset) + 1
    return script.count("\n", 0, offset) + 1, offset - line_start + 1


@dataclass(frozen=True)
class Piece:
    """One statement of a script, with its tokens (offsets in the whole script)."""

    start: int
    text: str
    tokens: list[Token]
    routine: bool  # CREATE TRIGGER/FUNCTION/PROCEDURE/EVENT: its body is SQL the analysis does not follow


def pieces(script: str, dialect: Dialect, dialect_name: str) -> list[Piece]:
    """The statements of ``script``; :class:`AnalysisError` when it cannot be tokenized."""
    tokens = _tokenize(script, dialect)
    result = []
    for group, end, routine in _statement_groups(tokens, postgres=dialect_name == "postgresql",
                                                 script_end=len(script)):
        if group:
            start = group[0].start  # comments before the first token stay out: the server never sees them
            result.append(Piece(start, script[start:end].rstrip(), group, routine))
    return result


def _tokenize(script: str, dialect: Dialect) -> list[Token]:
    tokenizer = dialect.tokenizer()
    try:
        return tokenizer.tokenize(script)
    except TokenError as error:
        offset = _offset_after(script, tokenizer.tokens)
        line, column = line_and_column(script, offset)
        raise AnalysisError(f"The script cannot be read from line {line}, column {column}: "
                            "is a quote, a quoted name or a $$ body left open?") from error


def _offset_after(script: str, tokens: Sequence[Token]) -> int:
    """Where the text the tokenizer gave up on begins: the first non-blank after its last token."""
    offset = tokens[-1].end + 1 if tokens else 0
    while offset < len(script) and script[offset].isspace():
        offset += 1
    return offset


def _statement_groups(tokens: Sequence[Token], *, postgres: bool,
                      script_end: int) -> Iterator[tuple[list[Token], int, bool]]:
    """(tokens, end offset, is a routine) per statement; a routine's BEGIN ... END body stays whole."""
    group: list[Token] = []
    header = _RoutineHeader()
    depth = 0
    pending = iter(range(len(tokens)))
    for index in pending:
        token = tokens[index]
        if token.token_type == TokenType.SEMICOLON and depth == 0:
            yield group, token.start, header.routine
            group, header = [], _RoutineHeader()
            continue
        group.append(token)
        if not header.decided:
            header.feed(token, first=len(group) == 1)
            continue
        if not header.routine:
            continue
        word = word_of(token)
        following = word_of(tokens[index + 1]) if index + 1 < len(tokens) else None
        if word == "CASE" or (word == "BEGIN" and (not postgres or following == "ATOMIC")):
            depth += 1
        elif word == "END":
            if following not in _BLOCK_ENDS_NOT_COUNTED:
                depth = max(depth - 1, 0)
            if following in _BLOCK_ENDS_NOT_COUNTED or following == "CASE":
                group.append(tokens[index + 1])
                next(pending)
    yield group, script_end, header.routine


class _RoutineHeader:
    """Decides, from its first words, whether a statement creates a trigger or a stored routine."""

    def __init__(self) -> None:
        self.decided = False
        self.routine = False
        self._options = False  # DEFINER = ... and the like come before the routine's keyword

    def feed(self, token: Token, *, first: bool) -> None:
        word = word_of(token)
        if first:
            self.decided = word != "CREATE"
        elif word in _ROUTINES:
            self.decided = self.routine = True
        elif word in _ROUTINE_HEADER_OPTIONS:
            self._options = True
        elif token.token_type == TokenType.L_PAREN or not (self._options or word in _ROUTINE_PREFIXES):
            self.decided = True


def word_of(token: Token) -> str | None:
    """The upper-cased keyword or bare name a token spells; None for literals and quoted names."""
    return None if token.token_type in _LITERAL_TOKENS else token.text.upper()


def leading_words(tokens: Iterable[Token], count: int = 3) -> list[str]:
    """The first ``count`` words of a statement (keywords sqlglot reads as one token are split)."""
    words: list[str] = []
    for token in tokens:
        word = word_of(token)
        if word is None or len(words) >= count:
            break
        words.extend(word.split())
    return words[:count]


def expanded(tokens: list[Token], script: str, dialect: Dialect) -> list[Token]:
    """``tokens`` with each command's rest (which sqlglot keeps as one string) tokenized too."""
    tokenizer_class = dialect.tokenizer_class
    result: list[Token] = []
    for index, token in enumerate(tokens):
        previous = tokens[index - 1] if index else None
        is_command_rest = (
            previous is not None and previous.token_type in tokenizer_class.COMMANDS
            and token.token_type == TokenType.STRING
            and (index == 1 or tokens[index - 2].token_type in tokenizer_class.COMMAND_PREFIX_TOKENS)
        )
        try:
            rest = _tokens_at(script, previous.end + 1, token.end + 1, dialect) if is_command_rest else None
        except TokenError:
            rest = None
        if rest is None:
            result.append(token)
        else:
            result.extend(expanded(rest, script, dialect))
    return result


def _tokens_at(script: str, start: int, end: int, dialect: Dialect) -> list[Token]:
    """The tokens of ``script[start:end]``, with offsets, lines and columns of the whole script."""
    tokens = dialect.tokenize(script[start:end])
    base_line, base_column = line_and_column(script, start)
    for token in tokens:
        if token.line == 1:
            token.col += base_column - 1
        token.line += base_line - 1
        token.start += start
        token.end += start
    return tokens
