"""Bytes of an uploaded CSV file → numbered records, fed incrementally, in constant memory.

Shared by the CSV and the OneRoster readers. Decisions:

- Text is UTF-8; a leading BOM is dropped. Bytes that are not UTF-8 become U+FFFD, and so do NUL
  characters, so a bad byte spoils only the value it sits in, which identity then rejects as
  ``INVALID_ROW`` naming the field.
- Records follow RFC 4180 as Python's ``csv`` module reads it (``excel`` dialect, non-strict): a
  quote opens a quoted field only at the start of a field; inside one, ``""`` is a quote and commas
  and line breaks are data. Records end at CRLF, LF or a lone CR outside quotes. The splitter below
  mirrors those rules so that each record handed to ``csv`` is exactly one record; a file ending
  inside an open quote yields what was read, as ``csv`` does.
- Records are numbered from 0: the header is record 0, so the first data record is 1 — the row
  number a staff member sees next to the header in a spreadsheet. Numbers count records, not
  physical lines (a quoted line break does not start a new row).
- Each value is cut to ``MAX_TRANSPORT_FIELD_CHARS`` (see ``domain.rows``); nothing else is changed.
- A record longer than ``MAX_RECORD_CHARS`` characters raises ``FileFormatError`` naming the row as
  soon as that many characters are buffered, so memory stays bounded whatever the input. The cap
  equals the ``csv`` module's default field limit, so no process-wide setting is changed.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Sequence
from typing import NamedTuple

from import_service.domain.rows import MAX_TRANSPORT_FIELD_CHARS, FileFormatError, cap_transport_field

MAX_RECORD_CHARS = 131_072
"""Largest record (header or data row) accepted, in characters; far beyond any real student row."""

_START_FIELD, _IN_FIELD, _IN_QUOTED, _QUOTE_IN_QUOTED = range(4)
_SPECIAL_CHAR = re.compile(r'[",\r\n]')
_CR_LINE_END = re.compile(r"\r\n?")


class Record(NamedTuple):
    """One CSV record: ``number`` 0 is the header row, data rows count from 1.

    A ``NamedTuple`` rather than a frozen dataclass, and ``cells`` the ``csv`` module's own list
    (read-only by type), because this is the per-record path and allocations are its cost.
    """

    number: int
    cells: Sequence[str]


def describe_record(number: int) -> str:
    """How messages name a record: "the header row" or "row N"."""
    return "the header row" if number == 0 else f"row {number}"


class _RecordSplitter:
    """Cuts decoded text into record strings (without their line ends), keeping state across calls."""

    def __init__(self, max_record_chars: int) -> None:
        self._max_record_chars = max_record_chars
        self._pending_parts: list[str] = []
        self._pending_chars = 0
        self._state = _START_FIELD
        self._skip_line_feed = False
        self._completed = 0

    def split(self, text: str) -> list[str]:
        """The records completed by ``text``; an unfinished record is kept for the next call."""
        records: list[str] = []
        position = 0
        if self._skip_line_feed and text:
            self._skip_line_feed = False
            position = 1 if text[0] == "\n" else 0
        start = position
        state = self._state
        length = len(text)
        while position < length:
            if position == start and state == _START_FIELD and not self._pending_parts:
                after_lines = self._split_quote_free_lines(text, start, records)
                if after_lines > start:
                    position = start = after_lines
                    continue
            special = _SPECIAL_CHAR.search(text, position)
            stop = length if special is None else special.start()
            if stop > position and state in (_START_FIELD, _QUOTE_IN_QUOTED):
                state = _IN_FIELD
            position = stop + 1
            if special is None:
                break
            char = text[stop]
            if char == '"':
                if state in (_START_FIELD, _QUOTE_IN_QUOTED):
                    state = _IN_QUOTED
                elif state == _IN_QUOTED:
                    state = _QUOTE_IN_QUOTED
            elif state == _IN_QUOTED:
                continue
            elif char == ",":
                state = _START_FIELD
            else:
                records.append(self._complete(text, start, stop))
                position = start = self._after_line_end(text, stop)
                state = _START_FIELD
        self._state = state
        if start < length:
            self._keep_pending(text[start:])
        return records

    def _split_quote_free_lines(self, text: str, start: int, records: list[str]) -> int:
        """Fast path: appends the complete records before the next quote; returns where they end."""
        quote = text.find('"', start)
        region_end = len(text) if quote < 0 else quote
        last_line_end = max(text.rfind("\n", start, region_end), text.rfind("\r", start, region_end))
        if last_line_end < start:
            return start
        block_end = last_line_end
        if text[last_line_end] == "\n" and last_line_end > start and text[last_line_end - 1] == "\r":
            block_end -= 1
        block = text[start:block_end]
        lines = _CR_LINE_END.sub("\n", block).split("\n") if "\r" in block else block.split("\n")
        if max(map(len, lines)) > self._max_record_chars:
            self._completed += next(i for i, line in enumerate(lines) if len(line) > self._max_record_chars)
            self._check_size(self._max_record_chars + 1)
        records.extend(lines)
        self._completed += len(lines)
        return self._after_line_end(text, last_line_end)

    def flush(self) -> list[str]:
        """The last record when the text did not end with a line break."""
        if not self._pending_parts:
            return []
        record = "".join(self._pending_parts)
        self._pending_parts, self._pending_chars, self._state = [], 0, _START_FIELD
        self._completed += 1
        return [record]

    def _complete(self, text: str, start: int, stop: int) -> str:
        self._check_size(self._pending_chars + stop - start)
        record = text[start:stop]
        if self._pending_parts:
            record = "".join(self._pending_parts) + record
            self._pending_parts, self._pending_chars = [], 0
        self._completed += 1
        return record

    def _keep_pending(self, part: str) -> None:
        self._check_size(self._pending_chars + len(part))
        self._pending_parts.append(part)
        self._pending_chars += len(part)

    def _check_size(self, chars: int) -> None:
        if chars > self._max_record_chars:
            raise FileFormatError(
                f"{describe_record(self._completed)} is longer than {self._max_record_chars} characters; "
                "is the file a CSV file with line breaks between rows?"
            )

    def _after_line_end(self, text: str, stop: int) -> int:
        if text[stop] == "\r":
            if stop + 1 == len(text):
                self._skip_line_feed = True
            elif text[stop + 1] == "\n":
                return stop + 2
        return stop + 1


class RecordReader:
    """Fed the file's bytes chunk by chunk; returns the records each chunk completes."""

    def __init__(self, max_record_chars: int = MAX_RECORD_CHARS) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._splitter = _RecordSplitter(max_record_chars)
        self._next_number = 0
        self._finished = False

    def feed(self, chunk: bytes) -> list[Record]:
        """Records completed by ``chunk`` (often none, or many)."""
        self._require_open()
        return self._parse(self._splitter.split(self._decode(chunk, final=False)))

    def finish(self) -> list[Record]:
        """The records left at end of file; the reader cannot be fed afterwards."""
        self._require_open()
        self._finished = True
        texts = self._splitter.split(self._decode(b"", final=True))
        return self._parse(texts + self._splitter.flush())

    def _decode(self, chunk: bytes, *, final: bool) -> str:
        text: str = self._decoder.decode(chunk, final)
        return text.replace("\x00", "\ufffd") if "\x00" in text else text

    def _parse(self, texts: list[str]) -> list[Record]:
        records: list[Record] = []
        try:
            for text, cells in zip(texts, csv.reader(texts), strict=True):
                if len(text) > MAX_TRANSPORT_FIELD_CHARS:
                    cells = [cap_transport_field(cell) for cell in cells]
                records.append(Record(self._next_number, cells))
                self._next_number += 1
        except csv.Error as error:
            raise FileFormatError(f"{describe_record(self._next_number)} is not valid CSV: {error}") from None
        return records

    def _require_open(self) -> None:
        if self._finished:
            raise RuntimeError("the reader has already been finished")
