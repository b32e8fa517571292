"""A separate process that uses the store, for the concurrency and crash tests.

    python -m tests.support.journal_worker append URL SESSION N TAG
    python -m tests.support.journal_worker migrate URL
    python -m tests.support.journal_worker lease URL SESSION HOLDER ROUNDS
    python -m tests.support.journal_worker forever URL SESSION
"""

from __future__ import annotations

import asyncio
import os
import sys

from lap_tui.store import open_store


async def main(argv: list[str]) -> None:
    cmd, url = argv[0], argv[1]
    store = await open_store(url, migrate=(cmd != "migrate"))
    try:
        if cmd == "migrate":
            report = await store.migrate()
            print("migrated", report.before, report.after, flush=True)
        elif cmd == "append":
            session, n, tag = argv[2], int(argv[3]), argv[4]
            for i in range(n):
                await store.append(session, "test.append", {"tag": tag, "i": i})
            print("done", flush=True)
        elif cmd == "lease":
            session, holder, rounds = argv[2], argv[3], int(argv[4])
            done = 0
            while done < rounds:
                if await store.acquire_lease(session, holder, ttl=5.0):
                    await store.append(session, "test.enter", {"holder": holder}, holder=holder)
                    await asyncio.sleep(0.01)
                    await store.append(session, "test.exit", {"holder": holder}, holder=holder)
                    await store.release_lease(session, holder)
                    done += 1
                else:
                    await asyncio.sleep(0.002)
            print("done", flush=True)
        elif cmd == "forever":
            session = argv[2]
            i = 0
            print("ready", os.getpid(), flush=True)
            while True:
                # Varied sizes so a kill can land mid-write of a large row.
                await store.append(session, "test.forever", {"i": i, "pad": "x" * (i % 7 * 1000)})
                i += 1
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
