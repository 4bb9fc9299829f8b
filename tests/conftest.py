"""Shared fixtures. `scripted_server` starts scripted OpenAI-compatible servers (agent/testing/scripted_server.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from agent.testing.scripted_server import ScriptedServer, TurnSpec


@pytest.fixture
def scripted_server() -> Iterator[Callable[..., ScriptedServer]]:
    """Factory: `server = scripted_server(turns, **kwargs)` starts a ScriptedServer with that script.

    kwargs go to ScriptedServer (model=..., port=...). Every server started here is stopped at teardown.
    """
    servers: list[ScriptedServer] = []

    def start(turns: Iterable[TurnSpec] = (), **kwargs: Any) -> ScriptedServer:
        server = ScriptedServer(turns, **kwargs)
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
