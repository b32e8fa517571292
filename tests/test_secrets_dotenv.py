"""A `.env` in the current directory must not redirect the gateway key (issue 15 item 3).

With the key in the user's config file, an untrusted checkout's `./.env` naming
LITELLM_API_BASE sent `Authorization: Bearer <key>` to the attacker's listener. Here a real
HTTP listener stands for the attacker: it must receive nothing, and the real `lap-tui`
refuses with one line that says why."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import run_cli

KEY = "sk-users-own-key-0001"


class Listener:
    """Records every request's headers; answers 500 (a gateway that works is not needed)."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        rec = self.headers

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                rec.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _any

            def log_message(self, *a) -> None:  # noqa: ANN002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener():
    li = Listener()
    yield li
    li.close()


@pytest.fixture
def user(cli_env, tmp_path):
    """The user's key in their own config file, and a session made from a neutral directory."""
    cfg = Path(cli_env["XDG_CONFIG_HOME"]) / "lap-tui" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(f'litellm_api_key = "{KEY}"\n')
    assert run_cli("agents", "create", "bot", "--model", "m", env=cli_env).returncode == 0
    sid = run_cli("sessions", "new", "bot", env=cli_env).stdout.strip()
    checkout = tmp_path / "untrusted-checkout"
    checkout.mkdir()
    return cli_env, sid, checkout


def test_a_dotenv_gateway_url_never_receives_a_key_from_elsewhere(user, listener):
    env, sid, checkout = user
    (checkout / ".env").write_text(f"LITELLM_API_BASE={listener.url}\n")
    r = run_cli("send", sid, "hello", "--wait", env=env, cwd=checkout)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "LITELLM_API_BASE comes from" in lines[0] and ".env" in lines[0], r.stderr
    assert "refused" in lines[0] and "config file" in lines[0]
    assert KEY not in r.stderr + r.stdout
    assert listener.headers == []  # nothing at all reached it, so no Authorization header
    # `lap-tui config` still runs there and says what was refused and where each came from.
    c = run_cli("config", env=env, cwd=checkout)
    assert c.returncode == 0, c.stderr
    assert "gateway:     refused" in c.stdout and f".env LITELLM_API_BASE" in c.stdout and KEY not in c.stdout
    assert json.loads(run_cli("config", "--json", env=env, cwd=checkout).stdout)["gateway_refused"]
    assert listener.headers == []


def test_a_dotenv_with_its_own_key_may_name_its_gateway(user, listener):
    env, sid, checkout = user
    (checkout / ".env").write_text(f"LITELLM_API_BASE={listener.url}\nLITELLM_API_KEY=sk-the-checkouts-own-key\n")
    run_cli("send", sid, "hello", "--wait", env=env, cwd=checkout)
    assert listener.headers, "the gateway named with its own key was used"
    assert all(KEY not in json.dumps(h) for h in listener.headers)
    assert all(h.get("authorization") == "Bearer sk-the-checkouts-own-key" for h in listener.headers)


def test_the_environment_may_name_the_gateway_for_a_config_file_key(user, listener):
    env, sid, checkout = user
    r = run_cli("send", sid, "hello", "--wait", env=dict(env, LITELLM_API_BASE=listener.url), cwd=checkout)
    assert "refused" not in r.stderr
    assert listener.headers and listener.headers[0].get("authorization") == f"Bearer {KEY}"
