"""A TCP proxy for fault tests: forwards both ways until told to withhold the server's replies on
the connections open now, then cuts those connections. New connections always pass."""

from __future__ import annotations

import asyncio


class _Link:
    def __init__(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter) -> None:
        self.client, self.server = client, server
        self.withhold = False

    def cut(self) -> None:
        for w in (self.client, self.server):
            w.transport.abort()


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.links: list[_Link] = []
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> "TcpProxy":
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def withhold_replies(self) -> None:
        """From now on, what the server sends on the open connections is read and dropped: the
        client's requests still reach the server (and commit), their replies never come back."""
        for link in self.links:
            link.withhold = True

    def cut(self) -> None:
        """Drop every connection open now (as a network failure would)."""
        links, self.links = self.links, []
        for link in links:
            link.cut()

    async def _accept(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        s_reader, s_writer = await asyncio.open_connection(*self.target)
        link = _Link(c_writer, s_writer)
        self.links.append(link)
        await asyncio.gather(self._pipe(c_reader, s_writer, link, upstream=True),
                             self._pipe(s_reader, c_writer, link, upstream=False), return_exceptions=True)
        link.cut()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link, *,
                    upstream: bool) -> None:
        while data := await reader.read(65536):
            if not upstream and link.withhold:
                continue
            writer.write(data)
            await writer.drain()
        writer.transport.abort()
