"""An app behind Serval's reverse proxy (aiohttp): /app/echo answers the request it got as
JSON, /app/ws echoes WebSocket messages, /app/slow waits. Prints its port, then serves."""
import asyncio
import sys

from aiohttp import web, WSMsgType


async def echo(request):
    return web.json_response({
        "path": request.path_qs,
        "host": request.headers.get("Host"),
        "x_forwarded_for": request.headers.get("X-Forwarded-For"),
        "x_forwarded_proto": request.headers.get("X-Forwarded-Proto"),
        "x_forwarded_host": request.headers.get("X-Forwarded-Host"),
        "authorization": request.headers.get("Authorization"),
        "body": (await request.text()),
    })


async def ws(request):
    sock = web.WebSocketResponse()
    await sock.prepare(request)
    async for msg in sock:
        if msg.type == WSMsgType.TEXT:
            await sock.send_str("echo:" + msg.data)
        elif msg.type == WSMsgType.BINARY:
            await sock.send_bytes(msg.data[::-1])
    return sock


async def slow(request):
    await asyncio.sleep(30)
    return web.Response(text="late")


async def main():
    app = web.Application()
    app.router.add_route("*", "/app/echo", echo)
    app.router.add_get("/app/ws", ws)
    app.router.add_get("/app/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(port, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
