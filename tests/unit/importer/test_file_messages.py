"""A file read as messages of N rows, shared by many publishers (shared/cli/publishing.py)."""

from __future__ import annotations

import io

from import_service.domain.rows import FileFormat
from shared.cli.publishing import FileMessages


def _csv(rows: int) -> io.BytesIO:
    lines = ["username,email_address,first_name,last_name,auth_identifier"]
    lines += [f"s{n},s{n}@uni.edu,Given{n},Family{n},sis-{n}" for n in range(1, rows + 1)]
    return io.BytesIO(("\n".join(lines) + "\n").encode())


def test_messages_of_n_rows_and_a_last_partial_one_in_file_order() -> None:
    messages = FileMessages(_csv(7), FileFormat.CSV, 3)
    sizes, numbers = [], []
    for rows in messages:
        sizes.append(len(rows))
        numbers += [row.row_number for row in rows]
    assert sizes == [3, 3, 1] and numbers == list(range(1, 8))


def test_many_takers_share_one_pass_and_progress_reports_bytes_and_rows() -> None:
    handle = _csv(10)
    messages = FileMessages(handle, FileFormat.CSV, 1)
    seen: list[tuple[int, int]] = []
    messages.progress = lambda read, published: seen.append((read, published))
    first, second = iter(messages), iter(messages)
    taken = [next(first), next(second)]
    taken += list(first) + list(second)
    assert sorted(rows[0].row_number for rows in taken) == list(range(1, 11))
    assert seen and seen[-1][0] == len(handle.getvalue())
