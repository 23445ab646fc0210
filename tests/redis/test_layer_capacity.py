"""channels_redis' core layer drops what exceeds a process's ``capacity`` (check W009).

In-process, with a real Redis: the sockets' process is kept busy (its event loop blocked)
while another thread, with a loop of its own, disconnects their users in a burst, so the
messages wait in Redis, as they do when a server process is busy. Past the capacity they are
dropped, and ``disconnect_user`` raises nothing.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from channels_jwt import adisconnect_user
from tests.harness import close_message
from tests.redis.conftest import RedisServer
from tests.redis.test_idle_layer import guarded_socket, using_layer

pytestmark = pytest.mark.live

USERS = 6


async def _disconnect_all(user_ids: list[int]) -> None:
    for user_id in user_ids:
        await adisconnect_user(user_id)


@pytest.mark.parametrize(("capacity", "all_closed"), [(3, False), (1000, True)])
async def test_a_burst_beyond_the_core_layers_capacity_is_dropped_without_an_error(
    redis_server: RedisServer, capacity: int, all_closed: bool
) -> None:
    with using_layer("core", redis_server, capacity=capacity):
        base = 4_300_000 + capacity + int(time.time()) % 1000 * 10
        user_ids = [base + index for index in range(USERS)]
        sockets = [await guarded_socket(user_id) for user_id in user_ids]
        errors: list[BaseException] = []

        def burst() -> None:
            try:
                async_to_sync(_disconnect_all)(user_ids)
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)

        sender = threading.Thread(target=burst)
        sender.start()
        sender.join(30)  # blocks this process's event loop: nothing is received meanwhile

        closed = 0
        for communicator in sockets:
            if not await communicator.receive_nothing(3 if closed == 0 else 0.5):
                message: Any = await communicator.receive_output(1)
                assert message == close_message(4441, "token_revoked")
                closed += 1
        for communicator in sockets:
            await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
            await communicator.wait(5)

    print(f"\ncapacity {capacity}: {closed} of {USERS} sockets closed")
    assert errors == []
    assert (closed == USERS) is all_closed
