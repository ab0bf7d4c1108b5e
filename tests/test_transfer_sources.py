"""Reading uploaded CSV, JSON and JSON Lines files (issue 8, imports): detection, streaming, errors, limits.

T26: XML (a billion-laughs bomb) and YAML (``!!python/object``) uploads are refused unread.
T28: lines, fields, JSON records and the number of columns are bounded; files are read in batches.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bastion.transfer import sources
from bastion.transfer.sources import Detected, SourceError, SourceOptions, detect, open_rows


@pytest.fixture(autouse=True)
def _restore_csv_field_limit():
    """open_rows sets csv's process-wide field limit; a test with a tiny limit must not leak it."""
    before = csv.field_size_limit()
    yield
    csv.field_size_limit(before)


def write(tmp_path: Path, data: bytes | str, name: str = "upload", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode(encoding) if isinstance(data, str) else data)
    return path


def read_all(path: Path, options: SourceOptions | None = None, size: int = 1000) -> tuple[list[str], list[list]]:
    with open_rows(path, options or detect(path).options()) as source:
        rows = [row for batch in source.batches(size) for row in batch]
        return source.columns, rows


def failure(path: Path, options: SourceOptions | None = None, size: int = 1000) -> tuple[SourceError, list[list]]:
    """The error reading ``path`` raises, and the rows yielded before it."""
    rows: list[list] = []
    with pytest.raises(SourceError) as caught, open_rows(path, options or detect(path).options()) as source:
        for batch in source.batches(size):
            rows.extend(batch)
    return caught.value, rows


# --- encodings -----------------------------------------------------------------------------------------------------
def test_utf8_with_bom_is_detected_and_the_bom_is_not_part_of_the_first_name(tmp_path):
    path = write(tmp_path, "name,city\nZoë,Köln\n", encoding="utf-8-sig")
    found = detect(path)
    assert found == Detected("csv", "utf-8-sig", ",", '"', True)
    assert read_all(path) == (["name", "city"], [["Zoë", "Köln"]])


def test_a_bom_is_dropped_even_when_the_user_chooses_plain_utf8(tmp_path):
    path = write(tmp_path, "name,city\nZoë,Köln\n", encoding="utf-8-sig")
    assert read_all(path, SourceOptions(encoding="utf-8"))[0] == ["name", "city"]


def test_cp1252_is_chosen_when_the_file_is_not_utf8(tmp_path):
    path = write(tmp_path, "name;price\nCafé;4,50 €\nCrème brûlée;6,00 €\n", encoding="cp1252")
    found = detect(path)
    assert (found.encoding, found.delimiter, found.header) == ("cp1252", ";", True)
    assert read_all(path)[1] == [["Café", "4,50 €"], ["Crème brûlée", "6,00 €"]]


def test_bytes_cp1252_lacks_fall_back_to_latin1(tmp_path):
    path = write(tmp_path, b"name\nA\x81B\n")  # 0x81 is undefined in Windows-1252
    assert detect(path).encoding == "latin-1"


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_and_without_bom(tmp_path, codec):
    text = "id\tname\n1\tÉlodie\n2\t東京\n"
    path = write(tmp_path, text, encoding=codec)
    found = detect(path)
    assert found.encoding == codec
    assert found.delimiter == "\t"
    assert read_all(path) == (["id", "name"], [["1", "Élodie"], ["2", "東京"]])


def test_a_multibyte_character_cut_by_the_sample_end_is_still_utf8(tmp_path):
    prefix = "a\n" + "x" * (sources.SAMPLE_BYTES - 3)  # "é" takes bytes 65535 and 65536: cut in two
    path = write(tmp_path, prefix + "é\nz\n")
    assert len((prefix).encode()) == sources.SAMPLE_BYTES - 1
    assert detect(path).encoding == "utf-8"


def test_wrong_encoding_names_the_byte(tmp_path):
    data = ("name\n" + "plain\n" * 5000 + "Café\n").encode("cp1252")
    path = write(tmp_path, data)
    error, _ = failure(path, SourceOptions(encoding="utf-8"))
    offset = data.index(b"\xe9")
    assert error.message == f"The file is not valid UTF-8 at byte {offset:,}; choose its encoding."


def test_encoding_and_dialect_outside_the_offered_ones_are_refused(tmp_path):
    path = write(tmp_path, "a,b\n1,2\n")
    for options, words in [(SourceOptions(encoding="rot13"), "encodings"), (SourceOptions(format="xml"), "format"),
                           (SourceOptions(delimiter=";;"), "one character"),
                           (SourceOptions(delimiter='"'), "must differ"), (SourceOptions(quotechar="\n"), "line")]:
        with pytest.raises(SourceError, match=words):
            open_rows(path, options)


# --- CSV dialects and headers --------------------------------------------------------------------------------------
def test_semicolon_csv_with_header(tmp_path):
    path = write(tmp_path, "id;name;amount\r\n1;Ann;3,50\r\n2;Bob;4,00\r\n3;Cy;0,10\r\n")
    found = detect(path)
    assert (found.format, found.delimiter, found.header) == ("csv", ";", True)
    assert read_all(path) == (["id", "name", "amount"], [["1", "Ann", "3,50"], ["2", "Bob", "4,00"],
                                                          ["3", "Cy", "0,10"]])


def test_tab_and_pipe_separated(tmp_path):
    tab = write(tmp_path, "a\tb\tc\n1\t2\t3\n4\t5\t6\n", "tab")
    pipe = write(tmp_path, "a|b|c\n1|2|3\n4|5|6\n", "pipe")
    assert detect(tab).delimiter == "\t"
    assert detect(pipe).delimiter == "|"
    assert read_all(pipe)[1] == [["1", "2", "3"], ["4", "5", "6"]]


def test_quoted_fields_with_newlines_delimiters_and_quotes(tmp_path):
    rows = [["id", "note", "tags"], ["1", "line one\nline two", "a,b"], ["2", 'said "hi", left', ""],
            ["3", "crlf\r\ninside", "x;y|z"]]
    path = tmp_path / "quoted.csv"
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows(rows)
    found = detect(path)
    assert (found.delimiter, found.quotechar, found.header) == (",", '"', True)
    with open_rows(path, found.options()) as source:
        assert source.columns == rows[0]
        assert [r for b in source.batches() for r in b] == rows[1:]
        assert source.line_number == 6  # two of the rows span two lines each


def test_decimal_commas_choose_the_semicolon(tmp_path):
    path = write(tmp_path, "1,5;2,5\n3,1;4,2\n5,0;6,5\n")
    found = detect(path)
    assert (found.delimiter, found.header) == (";", False)
    assert read_all(path)[1][0] == ["1,5", "2,5"]


def test_header_names_lose_surrounding_spaces_cells_keep_them(tmp_path):
    path = write(tmp_path, "a, b, c\n1, 2, 3\n")
    assert read_all(path) == (["a", "b", "c"], [["1", " 2", " 3"]])


def test_cr_only_line_ends(tmp_path):
    path = write(tmp_path, "a;b\r1;2\r3;4\r")
    assert detect(path).delimiter == ";"
    assert read_all(path) == (["a", "b"], [["1", "2"], ["3", "4"]])


def test_no_header_when_the_first_row_is_data(tmp_path):
    path = write(tmp_path, "1,Ann,2024-01-02\n2,Bob,2024-02-03\n")
    found = detect(path)
    assert found.header is False
    assert read_all(path) == (["column_1", "column_2", "column_3"], [["1", "Ann", "2024-01-02"],
                                                                    ["2", "Bob", "2024-02-03"]])


def test_header_of_names_over_rows_of_numbers(tmp_path):
    path = write(tmp_path, "width,height,depth\n1,2,3\n4.5,6,7\n")
    assert detect(path).header is True


def test_the_user_overrides_the_header_guess(tmp_path):
    path = write(tmp_path, "name,city\nAnn,Paris\n")
    assert read_all(path, detect(path).options(header=False)) == (
        ["column_1", "column_2"], [["name", "city"], ["Ann", "Paris"]])


def test_blank_lines_are_skipped_and_not_counted(tmp_path):
    path = write(tmp_path, "\na,b\n1,2\n\n3,4\n\n\n")
    with open_rows(path, SourceOptions()) as source:
        assert source.columns == ["a", "b"]
        assert [r for b in source.batches() for r in b] == [["1", "2"], ["3", "4"]]
        assert source.row_number == 2


def test_white_space_is_a_value_in_a_single_column_file(tmp_path):
    path = write(tmp_path, "note\nfirst\n   \n\nlast\n")
    assert read_all(path, SourceOptions())[1] == [["first"], ["   "], ["last"]]


def test_empty_header_names_become_column_n(tmp_path):
    path = write(tmp_path, "id,, \n1,2,3\n")
    assert read_all(path, SourceOptions())[0] == ["id", "column_2", "column_3"]


def test_duplicate_header_names_are_an_error(tmp_path):
    path = write(tmp_path, "id,name,name\n1,a,b\n")
    with pytest.raises(SourceError, match='"name" twice \\(columns 2 and 3\\)'):
        open_rows(path, SourceOptions())


def test_adversarial_quotes_do_not_stall_detection(tmp_path):
    # csv.Sniffer's regular expressions take quadratic time on this (about 25 s for 64 KB); it sees 4 KB only.
    path = write(tmp_path, ',"' * (sources.SAMPLE_BYTES // 2))
    assert detect(path).format == "csv"


# --- CSV errors and limits -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("line", "count"), [("7,8,9", 3), ("7", 1)])
def test_ragged_row_is_an_error_with_its_number_after_the_rows_before_it(tmp_path, line, count):
    path = write(tmp_path, "a,b\n" + "1,2\n" * 5 + line + "\n" + "3,4\n")
    error, rows = failure(path, size=3)
    assert error.row == 6
    fields = "1 field" if count == 1 else f"{count} fields"
    assert error.message == f"Row 6 has {fields}; the header has 2."
    assert rows == [["1", "2"]] * 5


def test_ragged_row_without_header(tmp_path):
    path = write(tmp_path, "1,2\n3,4,5\n")
    error, _ = failure(path, SourceOptions(header=False))
    assert error.message == "Row 2 has 3 fields; the first row has 2."


def test_field_larger_than_the_limit(tmp_path):
    path = write(tmp_path, 'a,b\n1,2\n3,"' + "x\n" * 600 + '"\n')
    error, rows = failure(path, SourceOptions(max_record_bytes=1000))
    assert error.row == 2
    assert "A field is longer than 1,000 characters" in error.message
    assert rows == [["1", "2"]]


def test_line_longer_than_the_limit(tmp_path):
    path = write(tmp_path, "a,b\n1,2\n3," + "x" * 5000 + "\n")
    error, _ = failure(path, SourceOptions(max_record_bytes=1000))
    assert (error.row, error.line) == (2, 3)
    assert "A line is longer than 1,000 characters" in error.message


def test_the_field_limit_is_bounded(tmp_path):
    path = write(tmp_path, "a\n1\n")
    read_all(path)
    assert csv.field_size_limit() == sources.MAX_RECORD_BYTES == 16 * 1024 * 1024


def test_unclosed_quote_and_stray_quote(tmp_path):
    unclosed = write(tmp_path, 'a,b\n1,2\n3,"four\n5,6\n', "unclosed")
    error, _ = failure(unclosed, SourceOptions())
    assert error.row == 2 and "not closed" in error.message
    stray = write(tmp_path, 'a,b\n1,"2"x\n', "stray")
    error, _ = failure(stray, SourceOptions())
    assert error.row == 1 and "must be doubled" in error.message


def test_nul_in_csv_is_an_error_naming_its_line(tmp_path):
    path = write(tmp_path, b"a,b\n1,2\n3,4\x005\n")
    assert detect(path).encoding == "utf-8"  # one stray NUL: still text, refused when read
    error, rows = failure(path)
    assert (error.row, error.line) == (2, 3)
    assert "NUL" in error.message
    assert rows == [["1", "2"]]


def test_too_many_columns(tmp_path):
    path = write(tmp_path, ",".join(f"c{i}" for i in range(12)) + "\n" + ",".join("1" * 12) + "\n")
    with pytest.raises(SourceError, match="12 columns; at most 10"):
        open_rows(path, SourceOptions(max_columns=10))
    with pytest.raises(SourceError, match="12 columns; at most 10"):
        open_rows(path, SourceOptions(max_columns=10, header=False))


def test_empty_file_whitespace_and_header_only(tmp_path):
    for data in (b"", b"  \n\n"):
        path = write(tmp_path, data)
        with pytest.raises(SourceError, match="The file is empty"):
            detect(path)
        with pytest.raises(SourceError, match="The file is empty"):
            open_rows(path, SourceOptions())
    for fmt in ("json", "jsonl"):
        with pytest.raises(SourceError, match=r"The file is empty|no rows"):
            open_rows(write(tmp_path, b"\n"), SourceOptions(format=fmt))
    path = write(tmp_path, "id,name\n")
    assert detect(path).header is True
    with pytest.raises(SourceError, match="header but no rows"):
        open_rows(path, detect(path).options())


# --- streaming -----------------------------------------------------------------------------------------------------
def test_a_large_csv_streams_in_batches_with_progress(tmp_path):
    path = tmp_path / "big.csv"
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "text"])
        writer.writerows([i, f"row {i}, with a comma"] for i in range(25_000))
    size = path.stat().st_size
    positions, sizes = [], []
    with open_rows(path, detect(path).options()) as source:
        assert source.position() < size
        for batch in source.batches(1000):
            sizes.append(len(batch))
            positions.append(source.position())
            assert batch[-1][0] == str(source.row_number - 1)
        assert source.row_number == 25_000
        assert source.line_number == 25_001
    assert sizes == [1000] * 25
    assert positions == sorted(positions)
    assert positions[-1] == size


def test_a_batch_ends_early_when_its_rows_are_large(tmp_path):
    path = write(tmp_path, "a\n" + ("x" * 1000 + "\n") * 1000)
    with open_rows(path, SourceOptions(batch_bytes=50_000)) as source:
        sizes = [len(b) for b in source.batches(1000)]
    assert sum(sizes) == 1000
    assert max(sizes) < 200  # about 50 KB of rows, checked every 64 rows


def test_position_counts_bytes_not_characters(tmp_path):
    path = write(tmp_path, "a\n" + "é\n" * 10, encoding="utf-16")
    with open_rows(path, detect(path).options()) as source:
        list(source.batches())
        assert source.position() == path.stat().st_size


# --- JSON ----------------------------------------------------------------------------------------------------------
DOCUMENTS = [
    {"id": 1, "price": 0.1, "big": 12345678901234567890, "exp": 1e400, "name": "Zoë \"Z\"", "ok": True,
     "none": None},
    {"id": 2, "nested": {"a": [1, 2.50, None, False], "b": {"c": "é"}}, "list": [], "ok": False},
]
RAW_DOCUMENTS = (
    '[{"id": 1, "price": 0.1, "big": 12345678901234567890, "exp": 1e400, "name": "Zo\\u00eb \\"Z\\"", "ok": true, '
    '"none": null},\n {"id": 2, "nested": {"a": [1, 2.50, null, false], "b": {"c": "é"}}, "list": [], "ok": false}]'
)
EXPECTED_COLUMNS = ["id", "price", "big", "exp", "name", "ok", "none", "nested", "list"]
EXPECTED_ROWS = [
    ["1", "0.1", "12345678901234567890", "1e400", 'Zoë "Z"', "true", None, None, None],
    ["2", None, None, None, None, "false", None, '{"a":[1,2.50,null,false],"b":{"c":"é"}}', "[]"],
]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 65536])
def test_json_array_across_chunk_boundaries_keeps_numbers_exact(tmp_path, chunk):
    path = write(tmp_path, RAW_DOCUMENTS)
    found = detect(path)
    assert found.format == "json"
    with open_rows(path, found.options(chunk_chars=chunk)) as source:
        assert source.columns == EXPECTED_COLUMNS
        assert [r for b in source.batches(1) for r in b] == EXPECTED_ROWS
        assert source.position() == path.stat().st_size
        assert source.row_number == 2


def test_json_bom_read_one_character_at_a_time_as_plain_utf8(tmp_path):
    path = write(tmp_path, '[{"a": 1}]', encoding="utf-8-sig")
    assert detect(path) == Detected("json", "utf-8-sig")
    assert read_all(path, SourceOptions(format="json", encoding="utf-8", chunk_chars=1)) == (["a"], [["1"]])


def test_json_cells_are_plain_strings(tmp_path):
    path = write(tmp_path, RAW_DOCUMENTS)
    _, rows = read_all(path)
    assert {type(c) for row in rows for c in row if c is not None} == {str}


def test_json_array_of_many_objects_in_small_chunks(tmp_path):
    documents = [{"n": i, "text": "x" * (i % 50), "when": "2024-01-01"} for i in range(3000)]
    path = write(tmp_path, json.dumps(documents, indent=2))
    with open_rows(path, SourceOptions(format="json", chunk_chars=100)) as source:
        batches = list(source.batches(500))
    assert [len(b) for b in batches] == [500] * 6
    assert batches[-1][-1] == ["2999", "x" * (2999 % 50), "2024-01-01"]


def test_json_object_growing_past_many_chunks_and_the_record_limit(tmp_path):
    big = {"id": 1, "blob": "y" * 5000}
    path = write(tmp_path, json.dumps([{"id": 0, "blob": ""}, big]))
    assert read_all(path, SourceOptions(format="json", chunk_chars=10))[1][1] == ["1", "y" * 5000]
    error, rows = failure(path, SourceOptions(format="json", chunk_chars=10, max_record_bytes=1000))
    assert error.row == 2 and "larger than 1,000 characters" in error.message
    assert rows == [["0", ""]]


def test_json_keys_come_from_the_first_objects_and_later_keys_are_an_error(tmp_path):
    path = write(tmp_path, json.dumps([{"a": 1}, {"b": 2}, {"a": 3}, {"c": 4}]))
    with open_rows(path, SourceOptions(format="json", key_sample_rows=2)) as source:
        assert source.columns == ["a", "b"]
        rows = []
        with pytest.raises(SourceError) as caught:
            for batch in source.batches(10):
                rows.extend(batch)
    assert rows == [["1", None], [None, "2"], ["3", None]]
    assert caught.value.row == 4
    assert caught.value.message.startswith('Row 4 has the field "c", which the first 2 rows do not have')


def test_json_empty_key_becomes_column_n(tmp_path):
    path = write(tmp_path, '[{"": 1, "b": 2}]')
    assert read_all(path) == (["column_1", "b"], [["1", "2"]])


@pytest.mark.parametrize(("data", "words", "row"), [
    ('[{"a": 1}, 2]', "Row 2 is not an object", 2),
    ('[{"a": 1},]', "Row 2 is missing", 2),
    ('[{"a": 1}', "ends after row 1 before the array is closed", 2),
    ('[{"a": 1} {"a": 2}]', "After row 1, a comma or the closing ] is missing", 2),
    ('[{"a": 1}] trailing', "more text after the end", None),
    ('[{"a": 1}, {"a": }]', "Row 2 is not valid JSON: Expecting value", 2),
    ('[{"a": 1}, {"a": "open]', "Row 2 is not valid JSON: Unterminated string", 2),
])
def test_json_array_errors(tmp_path, data, words, row):
    path = write(tmp_path, data)
    error, _ = failure(path, SourceOptions(format="json", chunk_chars=4))
    assert words in error.message
    assert error.row == row


def test_json_that_is_not_an_array_of_objects(tmp_path):
    for data in ('[1, 2, 3]', '["a"]'):
        with pytest.raises(SourceError, match="not an array of objects"):
            detect(write(tmp_path, data))
    with pytest.raises(SourceError, match="one JSON object"):
        detect(write(tmp_path, '{\n  "rows": [{"a": 1}]\n}'))
    with pytest.raises(SourceError, match="one JSON object"):
        open_rows(write(tmp_path, '{"a": 1}'), SourceOptions(format="json"))
    with pytest.raises(SourceError, match="no rows"):
        open_rows(write(tmp_path, "[ ]"), SourceOptions(format="json"))


@pytest.mark.parametrize("depth", [100_000, 900])
def test_deeply_nested_json_is_an_error_not_a_crash(tmp_path, depth):
    path = write(tmp_path, '[{"a": 1}, {"a": ' + "[" * depth + "]" * depth + "}]")
    error, rows = failure(path, SourceOptions(format="json"))
    assert error.row == 2 and "nests values too deeply" in error.message
    assert rows == [["1"]]


# --- JSON Lines ----------------------------------------------------------------------------------------------------
def test_jsonl_blank_lines_are_skipped_and_a_bad_line_is_named(tmp_path):
    path = write(tmp_path, '{"id": 1, "v": 0.10}\n\n{"id": 2, "v": {"x": 1}}\n   \n{"id": 3, "v": oops}\n{"id": 4}\n')
    found = detect(path)
    assert found.format == "jsonl"
    error, rows = failure(path, found.options())
    assert rows == [["1", "0.10"], ["2", '{"x":1}']]
    assert (error.row, error.line) == (3, 5)
    assert error.message.startswith("Line 5 is not valid JSON")


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = write(tmp_path, '{"id": 1}\n[2]\n')
    error, rows = failure(path, SourceOptions(format="jsonl"))
    assert (error.row, error.line) == (2, 2)
    assert "is not a JSON object" in error.message
    assert rows == [["1"]]


def test_jsonl_with_crlf_and_bom_and_progress(tmp_path):
    path = write(tmp_path, '{"a": "x"}\r\n{"a": null}\r\n', encoding="utf-8-sig")
    with open_rows(path, detect(path).options()) as source:
        assert [r for b in source.batches() for r in b] == [["x"], [None]]
        assert source.line_number == 2
        assert source.position() == path.stat().st_size


def test_jsonl_line_longer_than_the_limit(tmp_path):
    path = write(tmp_path, '{"a": 1}\n{"a": "' + "z" * 3000 + '"}\n')
    error, _ = failure(path, SourceOptions(format="jsonl", max_record_bytes=1000))
    assert (error.row, error.line) == (2, 2)


# --- refused files (T26) -------------------------------------------------------------------------------------------
BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol3;</lolz>
"""
REFUSED = {
    "billion-laughs.xml": BILLION_LAUGHS,
    "doctype.xml": "<!DOCTYPE lolz [<!ENTITY lol 'lol'>]><lolz>&lol;</lolz>",
    "no-prolog.xml": "<rows>\n<row id=\"1\"/>\n</rows>\n",
    "python.yaml": '!!python/object/apply:os.system ["touch /tmp/pwned"]\n',
    "python-doc.yaml": "--- !!python/object:__main__.Exploit\ncmd: id\n",
    "python-key.yaml": "name: x\nrun: !!python/object/apply:subprocess.check_output [[id]]\n",
    "directive.yaml": "%YAML 1.2\n---\na: 1\n",
    "document.yaml": "---\n- a: 1\n- a: 2\n",
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_xml_and_yaml_are_refused(tmp_path, name):
    path = write(tmp_path, "\ufeff  \n" + REFUSED[name], name)
    with pytest.raises(SourceError) as caught:
        detect(path)
    assert caught.value.message == "XML and YAML files are not accepted: save the data as CSV or JSON."
    for fmt in sources.FORMATS:  # forcing a format does not get past the refusal
        with pytest.raises(SourceError, match="XML and YAML"):
            open_rows(path, SourceOptions(format=fmt))


def test_xml_in_utf16_is_refused_too(tmp_path):
    path = write(tmp_path, BILLION_LAUGHS, encoding="utf-16")
    with pytest.raises(SourceError, match="XML and YAML"):
        detect(path)


@pytest.mark.parametrize(("data", "words"), [
    (b"PK\x03\x04" + b"\x00" * 100, "ZIP file"),
    (b"\x1f\x8b\x08\x00" + b"\x00" * 100, "gzip"),
    (b"%PDF-1.7\n", "PDF"),
    (bytes(range(256)) * 4, "not a text file"),
])
def test_binary_files_are_refused(tmp_path, data, words):
    with pytest.raises(SourceError, match=words):
        detect(write(tmp_path, data))


def test_a_csv_mentioning_markup_in_a_cell_is_accepted(tmp_path):
    path = write(tmp_path, "id,note\n1,<b>bold</b> and --- and !python\n")
    assert read_all(path)[1] == [["1", "<b>bold</b> and --- and !python"]]


# --- helpers for the import pages and jobs -------------------------------------------------------------------------
def test_sample_reads_the_first_rows_only(tmp_path):
    path = write(tmp_path, "a,b\n" + "1,2\n" * 50 + "3,4,5\n")  # the fault lies beyond the sample
    assert sample_of(path, 10) == (["a", "b"], [["1", "2"]] * 10)
    with pytest.raises(SourceError, match="Row 51 has 3 fields"):
        sample_of(path, 100)


def sample_of(path: Path, rows: int) -> tuple[list[str], list[list]]:
    return sources.sample(path, detect(path).options(), rows)


def test_options_round_trip_through_job_params(tmp_path):
    options = detect(write(tmp_path, "a;b\n1;2\n")).options(header=False, max_columns=5)
    params = json.loads(json.dumps(options.as_params()))
    assert SourceOptions(**params) == options
    assert params["delimiter"] == ";" and params["header"] is False
