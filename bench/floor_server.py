"""P3's floor (operations.md): a bare grpc.aio servicer answering ``GetUser`` with one asyncpg fetch.

What the identity service's GetUser cannot do without: the real generated ``IdentityService``
method (same request and reply messages, same serialisation), one pool fetch of the user's row by
primary key from the same database, the reply ``User`` built from it. No interceptor (no auth, no
metrics, no log line), no unit of work, no domain value. Same event loop (``shared.event_loop``:
uvloop unless ``ROLLCALL_EVENT_LOOP=asyncio``), same pool (``shared.pg.create_pool`` at the
settings' ``db_pool_min``/``db_pool_max``), the same columns (``user_rows.USER_COLUMNS``).

``python bench/floor_server.py`` with the service's environment (``ROLLCALL_IDENTITY_DATABASE_URL``,
``ROLLCALL_IDENTITY_PORT``); prints ``ready`` once it listens, serves until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import asyncpg
import grpc
from google.protobuf import timestamp_pb2

from identity_service.adapters.postgres.user_rows import USER_COLUMNS
from shared import event_loop, pg
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as pb_grpc
from shared.proto.rollcall.identity.v1 import resources_pb2 as res
from shared.settings import load_settings

BY_ID = f"SELECT {USER_COLUMNS} FROM users WHERE id = $1"  # noqa: S608 - a constant column list


def _stamp(moment: Any) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


class FloorServicer(pb_grpc.IdentityServiceServicer):
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def GetUser(self, request: pb.GetUserRequest, context: Any) -> res.User:
        row = await self._pool.fetchrow(BY_ID, request.id)
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "user not found")
        return res.User(
            id=str(row["id"]),
            user_type=res.UserType.Value(f"USER_TYPE_{row['user_type']}"),
            status=res.UserStatus.Value(f"USER_STATUS_{row['status']}"),
            school_id=str(row["school_id"]) if row["school_id"] is not None else "",
            username=row["username"] or "",
            email=row["email"],
            first_name=row["first_name"],
            last_name=row["last_name"],
            auth_identifier=row["auth_identifier"],
            origin=res.UserOrigin.Value(f"USER_ORIGIN_{row['origin']}"),
            file_updates_disabled=row["file_updates_disabled"],
            email_verified=row["email_verified"],
            create_time=_stamp(row["create_time"]),
            update_time=_stamp(row["update_time"]),
            etag=f'W/"{row["version"]}"',
        )


async def main() -> None:
    settings = load_settings()
    pool = await pg.create_pool(
        settings.identity_database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
    )
    server = grpc.aio.server()
    pb_grpc.add_IdentityServiceServicer_to_server(FloorServicer(pool), server)
    server.add_insecure_port(f"{settings.identity_host}:{settings.identity_port}")
    await server.start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop(1)
        await pool.close()


if __name__ == "__main__":
    event_loop.run(main())
