"""OneRosterUsersReader: students only, OneRoster column names, the shared CSV rules."""

from __future__ import annotations

import pytest

from import_service.domain.rows import FileFormatError, FileRow
from shared.files.oneroster import OneRosterUsersReader

USERS_HEADER = (
    b"sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,"
    b"givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password\r\n"
)


def user_line(sourced_id: str, status: str, role: str, username: str, given: str = "Ann") -> bytes:
    cells = [sourced_id, status, "2024-06-01", "true", "org-1", role, username, "{sis:1}", given, "Lee", "",
             f"ID-{sourced_id}", f"{username}@uni.edu", "", "", "", "11", "s3cret"]  # fmt: skip
    return (",".join(cells) + "\r\n").encode()


def read_users(data: bytes, chunk_size: int = 0) -> list[FileRow]:
    reader = OneRosterUsersReader()
    step = chunk_size or max(len(data), 1)
    rows: list[FileRow] = []
    for start in range(0, len(data), step):
        rows += reader.feed(data[start : start + step])
    return rows + reader.finish()


def test_maps_oneroster_columns_and_keeps_the_others_as_extras() -> None:
    reader = OneRosterUsersReader()
    rows = reader.feed(USERS_HEADER + user_line("u1", "active", "student", "ann")) + reader.finish()

    assert len(rows) == 1
    row = rows[0]
    assert row.field_values() == ("ann", "ann@uni.edu", "Ann", "Lee", "ID-u1")
    assert row.row_number == 1
    assert row.extra_values() == {
        "sourcedId": "u1",
        "status": "active",
        "dateLastModified": "2024-06-01",
        "enabledUser": "true",
        "orgSourcedIds": "org-1",
        "role": "student",
        "userIds": "{sis:1}",
        "middleName": "",
        "sms": "",
        "phone": "",
        "agentSourcedIds": "",
        "grades": "11",
    }
    assert "password" not in reader.extra_columns
    assert "s3cret" not in repr(rows)


def test_keeps_active_statusless_and_tobedeleted_students_only_with_their_file_row_numbers() -> None:
    data = USERS_HEADER + b"".join(
        [
            user_line("u1", "active", "student", "ann"),
            user_line("t1", "active", "teacher", "tom"),
            user_line("u2", "", "Student", "bob"),
            user_line("u3", "tobedeleted", "student", "cat"),
            user_line("u4", " Active ", " STUDENT ", "dan"),
            user_line("u5", "inactive", "student", "eve"),
            user_line("a1", "", "administrator", "amy"),
            user_line("u6", "active", "student", "fay"),
        ]
    )

    rows = read_users(data)

    assert [(row.row_number, row.username, row.status) for row in rows] == [
        (1, "ann", ""),
        (3, "bob", ""),
        (4, "cat", "archived"),  # tobedeleted: an archive row for identity (issue 9)
        (5, "dan", ""),
        (8, "fay", ""),
    ]


def test_header_names_are_case_insensitive_and_order_free() -> None:
    data = b"\xef\xbb\xbfEMAIL,GivenName,ROLE,Username,FAMILYNAME\nann@uni.edu,Ann,student,ann,Lee\n"

    assert read_users(data) == [FileRow(1, "ann", "ann@uni.edu", "Ann", "Lee", "", (("ROLE", "student"),))]


@pytest.mark.parametrize(
    ("header", "named"),
    [
        (b"sourcedId,username,email\n", "'role'"),
        (b"role,username,givenName\n", "'email'"),
        (b"role,email\n", "'username'"),
        (b"role,username,email,Email\n", "'Email' more than once"),
    ],
)
def test_missing_or_duplicate_columns_are_named(header: bytes, named: str) -> None:
    with pytest.raises(FileFormatError, match=named):
        read_users(header)


def test_empty_file_is_refused() -> None:
    with pytest.raises(FileFormatError, match="empty"):
        read_users(b"")


def test_one_byte_chunks_give_the_same_rows() -> None:
    data = USERS_HEADER + user_line("u1", "active", "student", "z\u00e9lie", "Z\u00e9lie\u20ac")
    data += b'u2,,,,,student,"bob, jr",,"multi\nline",Ray,,B,bob@uni.edu,,,,,\n'

    whole = read_users(data)

    assert read_users(data, chunk_size=1) == whole
    assert [row.username for row in whole] == ["z\u00e9lie", "bob, jr"]
    assert whole[1].first_name == "multi\nline"


def test_blank_records_keep_their_numbers_and_formula_quotes_are_not_removed() -> None:
    data = b"role,username,email\n\nstudent,'=ann,ann@uni.edu\n"

    rows = read_users(data)

    assert [(row.row_number, row.username) for row in rows] == [(2, "'=ann")]
