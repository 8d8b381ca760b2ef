"""The key against PostgreSQL's own case mapping: every code point that the server's ``lower()`` or
``upper()`` changes keys the same as its server-cased spelling, so no row can match on one side and
collide on the other. One exception, on purpose: the dotless i (U+0131) upper-cases to ``I``, whose key is
``i`` — a different letter, and a lookalike (EMAIL_CONFUSABLE), never the same address."""

from __future__ import annotations

import asyncpg

from identity_service.domain.identity_keys import EmailIdentity, email_key, username_key

DOTLESS_I = "\u0131"
CASED = """SELECT i, lower(chr(i)) AS lower, upper(chr(i)) AS upper
    FROM generate_series(1, 1114111) AS i
    WHERE (i < 55296 OR i > 57343) AND (lower(chr(i)) <> chr(i) OR upper(chr(i)) <> chr(i))"""


async def test_every_code_point_postgresql_cases_keeps_its_key(pg_server_url: str) -> None:
    conn = await asyncpg.connect(pg_server_url)
    try:
        cased = await conn.fetch(CASED)
    finally:
        await conn.close()
    assert len(cased) > 1000
    differing = []
    for row in cased:
        char = chr(row["i"])
        for spelt in (row["lower"], row["upper"]):
            if email_key(f"a{char}b@x.edu") != email_key(f"a{spelt}b@x.edu"):
                differing.append((char, spelt))
            assert username_key(f"{char}1") == username_key(f"{spelt}1") or (char, spelt) == (DOTLESS_I, "I")
    assert differing == [(DOTLESS_I, "I")]
    dotless, capital = EmailIdentity.of(f"a{DOTLESS_I}b@x.edu"), EmailIdentity.of("aIb@x.edu")
    assert dotless.confusable_with(capital)
