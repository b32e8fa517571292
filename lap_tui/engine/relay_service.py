"""The relay as a service of this host: one `lap-tui relay` process per data directory.

The relay must outlive whichever lap-tui started a CLI's turn (the CLI keeps calling the
model after its driver died), so it is its own process: started on demand by the first
driver that needs it (detached, in its own session), found again through its unix socket,
single per data directory (a lock file), and gone after an hour with no request and no open
connection. On SIGTERM (a Deployment's rollout, or `_stop` below) it stops accepting at once
(listeners closed, socket unlinked, lock released so a new relay may start), lets the streams
under way finish and charges them for up to LAP_RELAY_GRACE seconds (default 25), then exits 0.
It reads the same settings as lap-tui (the store to check tokens and charge
turns; the gateway's address and key), so the key stays in lap-tui's processes.

Tokens: `issue_token` makes a random one per session, stores only its SHA-256 and returns the
token for the sandbox. A session has one live token (a new one replaces the old); deleting
the session or its agent deletes it (ON DELETE CASCADE).

Virtual keys: a token of a session whose agent says `gateway_key = "virtual"` is granted with
that agent's budget and TTL, and the relay forwards with the session's LiteLLM virtual key
(gateway/relay.py). `delete_virtual_keys` deletes them with their sessions or agent.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from lap_tui.config import Settings
from lap_tui.domain.errors import LapError
from lap_tui.gateway.relay import Grant, Relay, Usage, VirtualKeys, VirtualKeySpec, hash_token
from lap_tui.store.base import Store

log = logging.getLogger(__name__)

IDLE_EXIT = 3600.0
GRACE = 25.0  # below the Deployment's terminationGracePeriodSeconds (deploy/k8s/relay.yaml)
START_WAIT = 20.0
MAX_SOCKET_PATH = 107


class RelayError(LapError):
    pass


def socket_path(settings: Settings) -> Path:
    path = Path(settings.data_dir) / "relay" / "sock" / "relay.sock"  # its own dir: bound into sandboxes
    if len(os.fsencode(str(path))) > MAX_SOCKET_PATH:
        raise RelayError(f"the relay's socket path {path} is longer than a unix socket allows",
                         "use a shorter data directory (XDG_DATA_HOME)")
    return path


def listen_address(settings: Settings) -> str:
    """host:port the relay also listens on over TCP, for Kubernetes pods (port 0: any free one).
    Default 127.0.0.1: kwok's exec runs on this host; a real cluster reaches it through a Service
    (LAP_RELAY_URL) in front of an address given here."""
    return str(settings["relay_listen"] or "") or "127.0.0.1:0"


def grace_period(settings: Settings) -> float:
    raw = str(settings["relay_grace"] or "").strip()
    try:
        grace = float(raw) if raw else GRACE
    except ValueError:
        grace = -1.0
    if not 0 <= grace < float("inf"):
        raise RelayError(f"LAP_RELAY_GRACE must be a number of seconds, not {raw!r}")
    return grace


def tcp_url(settings: Settings) -> str:
    """The URL a pod's CLI calls: LAP_RELAY_URL, else the address the running relay bound."""
    if settings["relay_url"]:
        return str(settings["relay_url"]).rstrip("/")
    bound = _read(socket_path(settings).parent.parent / "relay.tcp")
    if not bound:
        raise RelayError("the relay has no TCP address", "set LAP_RELAY_LISTEN / LAP_RELAY_URL")
    return f"http://{bound}"


async def issue_token(store: Store, session_id: str) -> str:
    token = "lap-" + secrets.token_urlsafe(32)
    await store.put_relay_token(hash_token(token), session_id)
    return token


async def _key_spec(store: Store, session_id: str) -> VirtualKeySpec | None:
    session = await store.get_session(session_id)
    agent = await store.get_agent_by_id(session.agent_id)
    sb = agent.sandbox
    if sb.gateway_key != "virtual":
        return None
    return VirtualKeySpec(budget_usd=float(sb.key_budget_usd), ttl=sb.key_ttl,
                          metadata={"lap_tui_agent": agent.name, "lap_tui_team": agent.team})


async def delete_virtual_keys(settings: Settings, agent, session_ids: list[str]) -> str:  # type: ignore[no-untyped-def]
    """Best effort, before the sessions (or their agent) are deleted: their LiteLLM virtual keys,
    when the agent uses them. "" when all went (or there were none); else a line to show (the
    relay's log and lap-tui's log say which and why; never the key)."""
    if agent.sandbox.gateway_key != "virtual" or not session_ids:
        return ""
    import httpx

    base = str(settings["litellm_api_base"]).rstrip("/")
    base = base[:-3] if base.endswith("/v1") else base
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0)) as client:
        failed = await VirtualKeys(client, base, settings["litellm_api_key"]).delete(list(session_ids))
    if not failed:
        return ""
    return (f"the gateway did not delete the LiteLLM virtual key of {len(failed)} of {len(session_ids)} "
            "session(s) (see the log); they expire with their TTL, or delete them in LiteLLM "
            "(aliases lap-tui-<session id>-*)")


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


async def _stop(home: Path, path: Path) -> None:
    pid = _read(home / "relay.pid")
    if pid.isdigit():
        try:
            os.kill(int(pid), signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_WAIT
    while await asyncio.to_thread(_alive, path) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.to_thread(_wait_lock, home / "relay.lock", deadline - loop.time())


def _wait_lock(lock_path: Path, timeout: float) -> None:
    """Until the old relay has let go of its lock (so the new one can take it)."""
    with open(lock_path, "a") as fh:
        end = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fh, fcntl.LOCK_UN)
                return
            except BlockingIOError:
                if time.monotonic() > end:
                    return
                time.sleep(0.05)


def _alive(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(2.0)
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _fingerprint(settings: Settings) -> str:
    """What a relay was started with (gateway, key, store), hashed: a relay started before the
    settings changed is replaced, never left forwarding to the old gateway."""
    raw = "\0".join((settings["litellm_api_base"], settings["litellm_api_key"], settings.database_url,
                     listen_address(settings)))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


async def ensure_relay(settings: Settings) -> Path:
    """The relay's socket, starting the relay process if none answers (or one answers that was
    started with other settings: that one is stopped first)."""
    path = socket_path(settings)
    home = path.parent.parent
    if await asyncio.to_thread(_alive, path):
        if _read(home / "relay.config") == _fingerprint(settings):
            return path
        await _stop(home, path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_file = open(path.parent.parent / "relay.log", "ab")
    try:
        proc = subprocess.Popen([sys.executable, "-m", "lap_tui", "relay", "--socket", str(path)],
                                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                                start_new_session=True, env=dict(os.environ))
        # Reaped when it ends while we live (no zombie); never killed when we exit.
        threading.Thread(target=proc.wait, name="reap relay", daemon=True).start()
    finally:
        log_file.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_WAIT
    while loop.time() < deadline:
        if await asyncio.to_thread(_alive, path):
            return path
        await asyncio.sleep(0.05)
    tail = (path.parent.parent / "relay.log").read_text(errors="replace")[-500:]
    raise RelayError(f"the relay did not start within {START_WAIT:g} s", f"see {path.parent.parent / 'relay.log'}: {tail}")


async def serve(settings: Settings, store: Store, path: Path, *, idle_exit: float = IDLE_EXIT) -> int:
    """Run the relay until idle for `idle_exit` seconds or SIGTERM. 0 when it ran, 1 if another one runs."""
    grace = grace_period(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = open(path.parent.parent / "relay.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return 1  # another relay owns the socket
    try:
        # Before the socket answers: whoever finds it alive also finds what it serves.
        (path.parent.parent / "relay.pid").write_text(f"{os.getpid()}\n")
        (path.parent.parent / "relay.config").write_text(_fingerprint(settings) + "\n")
        try:
            path.unlink()
        except FileNotFoundError:
            pass

        specs: dict[str, VirtualKeySpec | None] = {}  # token hash -> its agent's key settings

        async def authorize(token_hash: str) -> Grant | None:
            row = await store.relay_grant(token_hash)  # every request: a revoked token stops at once
            if not row:
                return None
            if token_hash not in specs:  # a token lives one turn: an edited agent counts from the next
                if len(specs) > 10000:
                    specs.clear()
                specs[token_hash] = await _key_spec(store, row[0])
            return Grant(row[0], row[1], specs[token_hash])

        async def account(grant: Grant, usage: Usage) -> None:
            if grant.turn_id:
                await store.update_turn(grant.turn_id, add_prompt_tokens=usage.prompt_tokens,
                                        add_completion_tokens=usage.completion_tokens, add_cost_usd=usage.cost_usd)

        async def healthy() -> bool:
            await store.relay_grant("-")  # a real query: the store answers (no row matches)
            return True

        relay = Relay(settings["litellm_api_base"], settings["litellm_api_key"], authorize=authorize, account=account,
                      healthy=healthy)
        # TCP first: whoever finds the unix socket alive also finds the TCP address.
        host, _, port = listen_address(settings).rpartition(":")
        tcp = await relay.serve_tcp(host.strip("[]"), int(port))
        bound = tcp.sockets[0].getsockname()
        (path.parent.parent / "relay.tcp").write_text(f"{bound[0]}:{bound[1]}\n")
        server = await relay.serve_unix(str(path))
        os.chmod(path, 0o666)  # sandboxes run as mapped users; the token is the check
        log.info("relay listening on %s, forwarding to %s", path, relay.upstream)
        print(f"READY {path}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        released = False

        def let_go() -> None:
            """Stop accepting; the socket and the lock go while still ours (a new relay may take them)."""
            nonlocal released
            relay.stop_accepting()
            if released:
                return
            released = True
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            fcntl.flock(lock, fcntl.LOCK_UN)

        seen, idle = -1, 0.0
        try:
            while idle < idle_exit and not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), 5.0)
                except TimeoutError:
                    pass
                if relay.requests != seen or relay.active:
                    seen, idle = relay.requests, 0.0
                else:
                    idle += 5.0
            log.info("relay stopping (%s)", "SIGTERM" if stop.is_set() else "idle")
            let_go()
            await relay.drain(grace)
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            let_go()
            await relay.aclose()
        return 0
    finally:
        lock.close()
