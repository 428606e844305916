"""The liveness endpoint (/healthz), served by leader and standby alike.

kopf's own liveness endpoint only exists while kopf runs, i.e. on the leader; a standby that
answered nothing would be restarted by its kubelet forever. This one answers as long as the
event loop does, and says whether the replica leads.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web


async def serve(host: str, port: int, is_leader: Callable[[], bool]) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "leader": is_leader()})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
