"""failed_rows_csv: upload format, formula-injection guard, exact round trip, chunked output."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator

import pytest

from import_service.domain.rows import FileRow
from shared.files.csv_reader import CsvRowReader
from shared.files.failed_rows_writer import CHUNK_CHARS, failed_rows_csv
from shared.files.formula_cells import guard_formula, unguard_formula


def export(rows: list[FileRow], extra_columns: tuple[str, ...] = ()) -> bytes:
    return b"".join(failed_rows_csv(rows, extra_columns))


def reread(data: bytes) -> tuple[list[FileRow], tuple[str, ...]]:
    reader = CsvRowReader()
    rows = reader.feed(data) + reader.finish()
    return rows, reader.extra_columns


def test_writes_the_upload_header_then_rows_with_a_bom_and_crlf() -> None:
    rows = [FileRow(7, "ann", "ann@uni.edu", "Ann", "Lee", "A-1", (("grade", "12"),))]

    data = export(rows, ("grade",))

    assert data == (
        b"\xef\xbb\xbfusername,email_address,first_name,last_name,auth_identifier,grade\r\n"
        b"ann,ann@uni.edu,Ann,Lee,A-1,12\r\n"
    )


def test_no_rows_gives_just_the_header() -> None:
    assert export([]) == b"\xef\xbb\xbfusername,email_address,first_name,last_name,auth_identifier\r\n"


def test_extras_follow_the_given_columns_missing_ones_empty_unlisted_ones_left_out() -> None:
    rows = [FileRow(1, "ann", "a@x.edu", extra=(("campus", "N"), ("secret_note", "x"), ("grade", "12")))]

    data = export(rows, ("grade", "campus", "house"))

    lines = data.decode("utf-8-sig").splitlines()
    assert lines[0].endswith(",grade,campus,house")
    assert lines[1] == "ann,a@x.edu,,,,12,N,"


@pytest.mark.parametrize("value", ['=HYPERLINK("x")', "+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd", "'=x"])
def test_formula_cells_are_neutralised_with_a_leading_quote(value: str) -> None:
    data = export([FileRow(1, value, "a@x.edu", extra=(("=col", value),))], ("=col",))

    header, row = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert header[-1] == "'=col"
    assert row[0] == "'" + value
    assert row[-1] == "'" + value


def test_harmless_cells_are_written_as_they_are() -> None:
    data = export([FileRow(1, "o'neil", "a@x.edu", "'quoted'", "1-2", "x=y")])

    assert data.decode("utf-8-sig").splitlines()[1] == "o'neil,a@x.edu,'quoted',1-2,x=y"


def test_export_then_upload_gives_back_every_value_exactly() -> None:
    tricky = ["=1+2", "+44 20", "-x", "@here", "\tTab", "\rCR", "'=quoted", "''-two", "'", "''", "'plain",
              'a "quoted", value', "multi\r\nline", "Zoë 😀", "", " spaced ", "\ufffd"]  # fmt: skip
    rows = [
        FileRow(index + 1, value, f"{value}@x.edu", value, value, value, (("=notes", value), ("grade", "12")))
        for index, value in enumerate(tricky)
    ]

    reread_rows, extra_columns = reread(export(rows, ("=notes", "grade")))

    assert extra_columns == ("=notes", "grade")
    assert reread_rows == rows


def test_guard_and_unguard_are_exact_inverses() -> None:
    generator = random.Random(7)
    alphabet = ["'", "=", "+", "-", "@", "\t", "\r", "a", " ", '"']
    for _ in range(5000):
        value = "".join(generator.choice(alphabet) for _ in range(generator.randint(0, 6)))
        guarded = guard_formula(value)
        assert unguard_formula(guarded) == value
        assert not guarded or guarded[0] not in "=+-@\t\r"


def test_large_exports_come_in_bounded_chunks_while_rows_are_still_being_read() -> None:
    consumed = 0

    def rows() -> Iterator[FileRow]:
        nonlocal consumed
        for number in range(1, 20_001):
            consumed = number
            yield FileRow(number, f"user{number}", f"user{number}@uni.edu", "First", "Last", f"id-{number}")

    chunks = failed_rows_csv(rows(), ())
    first = next(chunks)

    assert consumed < 20_000
    assert CHUNK_CHARS <= len(first) < CHUNK_CHARS + 200
    rest = list(chunks)
    assert all(len(chunk) < CHUNK_CHARS + 200 for chunk in rest)
    reread_rows, _ = reread(first + b"".join(rest))
    assert len(reread_rows) == 20_000
    assert reread_rows[-1].username == "user20000"


@pytest.mark.parametrize("columns", [("Username",), ("grade", "GRADE"), ("",), (" email_address ",)])
def test_extra_columns_that_would_clash_on_reupload_are_refused(columns: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="clashes"):
        export([], columns)


def test_a_status_column_carries_the_rows_status_and_reads_back_as_it() -> None:
    rows = [FileRow(1, "ann", "ann@uni.example", status="archived"), FileRow(2, "bo", "bo@uni.example")]
    data = b"".join(failed_rows_csv(rows, ["status"]))
    assert (
        data.splitlines()[0]
        == b"\xef\xbb\xbfusername,email_address,first_name,last_name,auth_identifier,status"
    )
    reader = CsvRowReader()
    back = reader.feed(data) + reader.finish()
    assert [(r.username, r.status, r.extra) for r in back] == [("ann", "archived", ()), ("bo", "", ())]
