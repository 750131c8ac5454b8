"""A fast local stand-in for ``POST /messages``: asyncio, keep-alive, answers 202.

Run by the benchmarks in a child process so it does not share the client's GIL.
``python -m benchmarks.endpoint PORT`` runs it by hand.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import sys
import time

ANSWER = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


async def handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency: float = 0.0
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            if latency:
                await asyncio.sleep(latency)
            writer.write(ANSWER)
            if b"connection: close" in head.lower():
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def serve(port: int, latency: float = 0.0) -> None:
    async def main() -> None:
        server = await asyncio.start_server(
            lambda r, w: handle(r, w, latency), "127.0.0.1", port, backlog=1024
        )
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(latency: float = 0.0) -> tuple[str, multiprocessing.Process]:
    """Start the endpoint (answering after ``latency`` seconds, like a remote API) in
    a child process; return its URL and the process."""
    port = free_port()
    process = multiprocessing.Process(target=serve, args=(port, latency), daemon=True)
    process.start()
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    return f"http://127.0.0.1:{port}", process


if __name__ == "__main__":
    serve(int(sys.argv[1]))
