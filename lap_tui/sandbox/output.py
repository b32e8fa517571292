"""Command output held in bounded memory, and secret masking of byte streams."""

from __future__ import annotations

from typing import Iterable

from lap_tui.domain.secrets import MASK, MIN_SECRET_LEN

DEFAULT_MAX_OUTPUT = 1 << 20  # per stream


class CappedBuffer:
    """Keeps the first 3/4 and the last 1/4 of `limit` bytes; counts what it dropped.

    A command printing gigabytes costs `limit` bytes of memory, not gigabytes.
    """

    def __init__(self, limit: int = DEFAULT_MAX_OUTPUT) -> None:
        self.limit = max(0, limit)
        self._head_max = self.limit - self.limit // 4
        self._tail_max = self.limit // 4
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self._head_max - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk and self._tail_max:
            self.tail += chunk[-self._tail_max:]
            if len(self.tail) > 2 * self._tail_max:  # trim in batches, not per chunk
                del self.tail[:-self._tail_max]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + min(len(self.tail), self._tail_max)

    def value(self) -> bytes:
        tail = bytes(self.tail[-self._tail_max:]) if self._tail_max else b""
        if not self.truncated:
            return bytes(self.head) + tail
        dropped = self.total - len(self.head) - len(tail)
        return bytes(self.head) + f"\n[... {dropped} bytes omitted ...]\n".encode() + tail


class StreamRedactor:
    """Masks secret values in a byte stream, even when one is split across chunks."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted({s.encode() for s in secrets if s and len(s) >= MIN_SECRET_LEN},
                               key=len, reverse=True)
        self._keep = max((len(s) for s in self._secrets), default=1) - 1
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        if not self._secrets:
            return chunk
        data = self._mask(self._pending + chunk)
        if self._keep and len(data) > self._keep:
            out, self._pending = data[:-self._keep], data[-self._keep:]
        elif self._keep:
            out, self._pending = b"", data
        else:
            out, self._pending = data, b""
        return out

    def flush(self) -> bytes:
        out, self._pending = self._mask(self._pending), b""
        return out

    def _mask(self, data: bytes) -> bytes:
        for s in self._secrets:
            if s in data:
                data = data.replace(s, MASK.encode())
        return data
