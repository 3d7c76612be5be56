"""A WebSocket client (aiohttp) through Serval: sends a text and a binary message and prints
what came back, one line each."""
import asyncio
import sys

import aiohttp


async def main(url):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            await ws.send_str("hello")
            print((await ws.receive(timeout=5)).data, flush=True)
            await ws.send_bytes(b"abc")
            print((await ws.receive(timeout=5)).data.decode(), flush=True)


asyncio.run(main(sys.argv[1]))
