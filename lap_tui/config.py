"""Effective settings, from (highest first) the environment, ./.env, the TOML config file, defaults.

Every value remembers where it came from, so `lap-tui config` can say. `CONTAINER_ENV_*`
variables are collected with the prefix stripped and kept in memory only: they are the
secrets handed to sandboxes and never written anywhere. `CONTAINER_ENV_X` reaches every
team's sandboxes (operator-wide); `CONTAINER_ENV_TEAM_<TEAM>__X` reaches only that team's
(TEAM upper-cased, `-` written `_`: team `data-eng` is `CONTAINER_ENV_TEAM_DATA_ENG__X`).

A gateway URL from ./.env never receives a key that came from elsewhere: an untrusted
checkout's .env could otherwise send the user's key to its own listener (docs/SECURITY.md).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from lap_tui.domain.errors import ConfigError
from lap_tui.domain.secrets import MASK, Redactor

APP_NAME = "lap-tui"
CONTAINER_ENV_PREFIX = "CONTAINER_ENV_"
TEAM_ENV_PREFIX = "CONTAINER_ENV_TEAM_"  # + <TEAM>__<NAME>: that team's sandboxes only
_TEAM_KEY = re.compile(r"([A-Za-z0-9]+(?:_[A-Za-z0-9]+)*)__([A-Za-z0-9]+(?:_[A-Za-z0-9]+)*)")

# name -> (environment variable, TOML key, is secret)
_KEYS: dict[str, tuple[str, str, bool]] = {
    "database_url": ("LAP_DATABASE_URL", "database_url", False),
    "litellm_api_base": ("LITELLM_API_BASE", "litellm_api_base", False),
    "litellm_api_key": ("LITELLM_API_KEY", "litellm_api_key", True),
    "team": ("LAP_TEAM", "team", False),
    "theme": ("LAP_THEME", "theme", False),
    "allow_unisolated": ("LAP_ALLOW_UNISOLATED", "allow_unisolated", False),
    "create_db": ("LAP_CREATE_DB", "create_db", False),
    # Sandboxes: "auto" picks kubernetes when a kube context or namespace map is set (docs/KUBERNETES.md).
    "sandbox_backend": ("LAP_SANDBOX_BACKEND", "sandbox_backend", False),
    "sandbox_image": ("LAP_SANDBOX_IMAGE", "sandbox_image", False),
    "kubeconfig": ("LAP_KUBECONFIG", "kubeconfig", False),
    "kube_context": ("LAP_KUBE_CONTEXT", "kube_context", False),
    "kube_namespace_prefix": ("LAP_KUBE_NAMESPACE_PREFIX", "kube_namespace_prefix", False),
    "kube_namespaces": ("LAP_KUBE_NAMESPACES", "kube_namespaces", False),
    # CLI harnesses on Kubernetes (docs/HARNESSES.md): where the relay also listens over TCP,
    # the URL pods reach it at (its Service), and where the pinned CLIs are inside a pod.
    "relay_listen": ("LAP_RELAY_LISTEN", "relay_listen", False),
    "relay_url": ("LAP_RELAY_URL", "relay_url", False),
    "relay_grace": ("LAP_RELAY_GRACE", "relay_grace", False),  # seconds a stopping relay lets streams finish
    "kube_harness_dir": ("LAP_KUBE_HARNESS_DIR", "kube_harness_dir", False),
    # a CLI agent's pod image when the agent names none: <prefix>lap-tui-harness-<name>:<version>
    "harness_image_prefix": ("LAP_HARNESS_IMAGE_PREFIX", "harness_image_prefix", False),
}
_TOML_TABLES = {"keys"}  # [keys]: binding id -> key(s)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def data_dir(environ: Mapping[str, str] | None = None) -> Path:
    return Path(_platform_dir("user_data_dir", "XDG_DATA_HOME", ".local/share", environ))


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    return Path(_platform_dir("user_config_dir", "XDG_CONFIG_HOME", ".config", environ))


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    return Path(_platform_dir("user_state_dir", "XDG_STATE_HOME", ".local/state", environ))


def _platform_dir(func: str, xdg: str, fallback: str, environ: Mapping[str, str] | None) -> str:
    env = os.environ if environ is None else environ
    # platformdirs reads os.environ; honour an explicit mapping (tests, subprocesses) too.
    if environ is not None and env.get(xdg):
        return str(Path(env[xdg]) / APP_NAME)
    import platformdirs

    return getattr(platformdirs, func)(APP_NAME)


@dataclass(frozen=True)
class Setting:
    value: Any
    source: str
    secret: bool = False

    def shown(self) -> Any:
        if self.secret and self.value:
            return MASK
        return self.value

    def __repr__(self) -> str:  # a repr reaches logs and tracebacks: never a secret
        shown = self.shown()
        return f"Setting({mask_url_password(shown) if isinstance(shown, str) else shown!r}, {self.source!r})"


@dataclass(frozen=True)
class Settings:
    values: dict[str, Setting]
    container_env: dict[str, str] = field(default_factory=dict)
    container_env_sources: dict[str, str] = field(default_factory=dict)
    team_env: dict[str, dict[str, str]] = field(default_factory=dict)  # team -> {NAME: value}
    team_env_sources: dict[str, dict[str, str]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    config_file: Path | None = None
    config_path: Path | None = None  # where the config file is looked for, whether or not it exists
    data_dir: Path = Path(".")
    state_dir: Path = Path(".")

    def __getitem__(self, name: str) -> Any:
        return self.values[name].value

    def __repr__(self) -> str:
        """Names and sources, never values that could be secret (a traceback prints reprs)."""
        shown = {k: mask_url_password(v) if isinstance(v := s.shown(), str) else v for k, s in self.values.items()}
        return (f"Settings(values={shown!r}, container_env={sorted(self.container_env)!r}, "
                f"team_env={ {t: sorted(v) for t, v in self.team_env.items()}!r}, config_file={self.config_file!r})")

    def container_env_for(self, team: str | None) -> dict[str, str]:
        """What a sandbox of `team` gets: the operator-wide values, then the team's own (which win).
        Another team's values never."""
        return {**self.container_env, **(self.team_env.get(team, {}) if team else {})}

    @property
    def database_url(self) -> str:
        return self["database_url"]

    @property
    def may_create_database_dir(self) -> bool:
        """A missing folder for the SQLite file is created only for the default database (under
        the data dir) or when asked (LAP_CREATE_DB=1): a typo in the URL must not become a new,
        empty store."""
        return self.values["database_url"].source == "default" or bool(self["create_db"])

    @property
    def redactor(self) -> Redactor:
        """Masks every secret value this process knows of."""
        secrets = list(self.container_env.values())
        for values in self.team_env.values():
            secrets += values.values()
        if self["litellm_api_key"]:
            secrets.append(self["litellm_api_key"])
        secrets += url_passwords(self.database_url)
        return Redactor(secrets)

    def describe(self) -> dict[str, Any]:
        """What `lap-tui config` shows: every setting, its source, secrets masked."""
        out: dict[str, Any] = {}
        for name, s in self.values.items():
            value = s.shown()
            if name == "database_url":
                value = mask_url_password(value)
            out[name] = {"value": value, "source": s.source}
        out["container_env"] = {k: {"value": MASK, "source": self.container_env_sources[k]}
                                for k in sorted(self.container_env)}
        out["team_env"] = {t: {k: {"value": MASK, "source": self.team_env_sources[t][k]} for k in sorted(v)}
                           for t, v in sorted(self.team_env.items())}
        out["keys"] = dict(self.keys)
        out["config_file"] = str(self.config_file) if self.config_file else None
        out["config_path"] = str(self.config_path) if self.config_path else None
        out["data_dir"] = str(self.data_dir)
        return out


_QUERY_SECRETS = ("password", "sslpassword", "passfile_password")


def url_passwords(url: str) -> list[str]:
    """Every password a database URL holds: `user:PASSWORD@` and `?password=`."""
    if "://" not in url:
        return []
    try:
        parts = urlsplit(url)
        out = [parts.password, unquote(parts.password)] if parts.password else []  # as written, and decoded
    except ValueError:
        return []
    out += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() in _QUERY_SECRETS and v]
    return list(dict.fromkeys(p for p in out if p))


def mask_url_password(url: str) -> str:
    """The URL with every password masked; the host (IPv6 brackets included) and port as written."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if parts.password is not None and "@" in netloc:
        userinfo, hostport = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _QUERY_SECRETS for k, _ in pairs):
            query = urlencode([(k, MASK if k.lower() in _QUERY_SECRETS else v) for k, v in pairs], safe="*/:")
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def load_settings(environ: Mapping[str, str] | None = None, cwd: Path | None = None, *,
                  check_gateway: bool = True) -> Settings:
    """`check_gateway=False` only for `lap-tui config`, which shows the refusal instead."""
    env = dict(os.environ if environ is None else environ)
    ddir = data_dir(environ)
    cfg_path = Path(env["LAP_CONFIG_FILE"]) if env.get("LAP_CONFIG_FILE") else config_dir(environ) / "config.toml"
    toml = _read_toml(cfg_path)
    dotenv_path = (cwd or Path.cwd()) / ".env"
    dotenv = _read_dotenv(dotenv_path)

    defaults: dict[str, Any] = {
        "database_url": f"sqlite://{ddir / 'lap.db'}",
        "litellm_api_base": "http://127.0.0.1:4000",
        "litellm_api_key": "",
        "team": "default",
        "theme": "lap-dark",
        "allow_unisolated": False,
        "create_db": False,
        "sandbox_backend": "auto",
        "sandbox_image": "python:3.12-slim",
        "kubeconfig": "",
        "kube_context": "",
        "kube_namespace_prefix": "lap-",
        "kube_namespaces": "",  # "team=namespace,...": overrides the prefix for those teams
        "relay_listen": "",  # host:port; "" is 127.0.0.1 on a free port (engine/relay_service.py)
        "relay_url": "",  # "": http://<the address the relay bound>
        "relay_grace": "",  # "": 25 s (engine/relay_service.py)
        "kube_harness_dir": "",  # "": the pod's image has the CLI on PATH
        "harness_image_prefix": "",  # e.g. "123456789012.dkr.ecr.eu-west-1.amazonaws.com/" ("": as kind loads them)
    }
    values: dict[str, Setting] = {}
    for name, (env_name, toml_key, secret) in _KEYS.items():
        if env_name in env:
            raw, source = env[env_name], f"environment {env_name}"
        elif env_name in dotenv:
            raw, source = dotenv[env_name], f".env {env_name}"
        elif toml_key in toml:
            raw, source = toml[toml_key], f"config file {cfg_path}"
        else:
            raw, source = defaults[name], "default"
        value = _coerce(name, raw, source, type(defaults[name]))
        values[name] = Setting(value, source, secret)
    check_database_url(values["database_url"].value, values["database_url"].source)
    check_api_base(values["litellm_api_base"].value, values["litellm_api_base"].source)
    if check_gateway:
        problem = gateway_refusal(values, dotenv_path)
        if problem:
            raise ConfigError(*problem)

    container_env: dict[str, str] = {}
    container_sources: dict[str, str] = {}
    team_env: dict[str, dict[str, str]] = {}
    team_sources: dict[str, dict[str, str]] = {}
    for origin, mapping in ((".env", dotenv), ("environment", env)):  # environment wins
        for k, v in mapping.items():
            if not k.startswith(CONTAINER_ENV_PREFIX) or len(k) <= len(CONTAINER_ENV_PREFIX) or v is None:
                continue
            if k.startswith(TEAM_ENV_PREFIX):
                team, name = team_env_key(k, origin)
                team_env.setdefault(team, {})[name] = v
                team_sources.setdefault(team, {})[name] = f"{origin} {k}"
                continue
            stripped = k[len(CONTAINER_ENV_PREFIX):]
            container_env[stripped] = v
            container_sources[stripped] = f"{origin} {k}"

    keys = toml.get("keys", {})
    if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
        raise ConfigError(f"config file {cfg_path}: [keys] must map binding ids to key strings",
                          'e.g. [keys] "app.quit" = "ctrl+q"')
    return Settings(values=values, container_env=container_env, container_env_sources=container_sources,
                    team_env=team_env, team_env_sources=team_sources,
                    keys=dict(keys), config_file=cfg_path if cfg_path.exists() else None, config_path=cfg_path,
                    data_dir=ddir, state_dir=state_dir(environ))


def team_env_key(key: str, origin: str) -> tuple[str, str]:
    """CONTAINER_ENV_TEAM_<TEAM>__<NAME> -> (team, NAME). The prefix is reserved: a key that
    does not parse is an error, never an operator-wide variable (a typo would hand a team's
    secret to every team)."""
    # Exactly one `__`, single `_`s inside the team and the name: so a key maps to one team only
    # (`A__B__X` could mean team a or team a--b: refused).
    m = _TEAM_KEY.fullmatch(key[len(TEAM_ENV_PREFIX):])
    if m is None:
        raise ConfigError(f"{origin} {key}: a team's sandbox variable is written CONTAINER_ENV_TEAM_<TEAM>__<NAME>",
                          "e.g. CONTAINER_ENV_TEAM_DATA_ENG__GITHUB_TOKEN for team data-eng; "
                          "CONTAINER_ENV_<NAME> reaches every team")
    return m.group(1).lower().replace("_", "-"), m.group(2)


def team_env_name(team: str, name: str) -> str:
    """The variable that gives `name` to `team`'s sandboxes only."""
    return f"{TEAM_ENV_PREFIX}{team.upper().replace('-', '_')}__{name}"


def gateway_refusal(values: Mapping[str, Setting], dotenv_path: Path) -> tuple[str, str] | None:
    """(problem, fix) when LITELLM_API_BASE comes from ./.env but the key from elsewhere: a
    checkout's .env must not be able to send the user's key to a URL of its choosing."""
    base, key = values["litellm_api_base"], values["litellm_api_key"]
    if base.source.startswith(".env") and key.value and not key.source.startswith(".env"):
        return (f"LITELLM_API_BASE comes from {dotenv_path} but the gateway key from {key.source}: refused, "
                "a .env in the current directory may not send your key elsewhere",
                "put LITELLM_API_KEY in that .env too, or set LITELLM_API_BASE in the environment or config file")
    return None


def check_database_url(url: str, source: str = "LAP_DATABASE_URL") -> None:
    fix = "use sqlite:///ABSOLUTE/PATH.db or postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        if not sqlite_path(url):
            raise ConfigError(f"database URL {url!r} ({source}) names no file", fix)
        return
    if scheme in ("postgres", "postgresql"):
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            raise ConfigError(f"database URL ({source}) is malformed: {exc}", fix) from None
        if not parts.hostname and "host=" not in parts.query:
            raise ConfigError(f"database URL {mask_url_password(url)!r} ({source}) names no host", fix)
        return
    raise ConfigError(f"database URL {mask_url_password(url)!r} ({source}) is not supported", fix)


def check_api_base(url: str, source: str = "LITELLM_API_BASE") -> None:
    """The gateway's address must be an http(s) URL with a host: `not-a-url` is refused at once
    instead of failing every turn later."""
    fix = "use the gateway's URL, e.g. http://127.0.0.1:4000 (with or without /v1)"
    shown = mask_url_password(url)[:120] if "://" in url else url[:120]
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"LITELLM_API_BASE {shown!r} ({source}) is malformed: {exc}", fix) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"LITELLM_API_BASE {shown!r} ({source}) is not an http(s) URL", fix)


def sqlite_path(url: str) -> str:
    """sqlite:///abs/path.db -> /abs/path.db; sqlite:rel.db -> rel.db."""
    rest = url.split(":", 1)[1]
    if rest.startswith("//"):
        rest = rest[2:]
        if rest and not rest.startswith("/"):
            return ""  # a host part (sqlite://host/x) means nothing for a file
    return rest


def _coerce(name: str, raw: Any, source: str, kind: type) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"{name} = {raw!r} ({source}) is not true or false", "use true or false")
    if not isinstance(raw, str):
        raise ConfigError(f"{name} ({source}) must be a string, not {type(raw).__name__}", f'write {name} = "..."')
    return raw


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}",
                          "fix that line, or move the file away to use the defaults") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}", "check its permissions") from None
    known = {toml_key for _, toml_key, _ in _KEYS.values()} | _TOML_TABLES
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown key {unknown[0]!r}",
                          "known keys: " + ", ".join(sorted(known)))
    return data


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    # Read, never exported to os.environ: child processes must not inherit these secrets.
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


# --- files only this user may reach ------------------------------------------------------
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def sqlite_files(settings: Settings) -> list[Path]:
    """The embedded database and its companions (WAL, shared memory, rollback journal)."""
    url = settings.database_url
    if not url.lower().startswith("sqlite:") or not sqlite_path(url):
        return []
    db = Path(sqlite_path(url)).expanduser()
    return [db] + [db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal")]


def private_paths(settings: Settings) -> list[Path]:
    """What holds secrets or other teams' work: the data dir (workspaces, the database), the
    state dir (drafts), the config file (the gateway key) and the SQLite files wherever they are."""
    return ([settings.data_dir, settings.data_dir / "sandboxes", settings.state_dir]
            + ([settings.config_file] if settings.config_file else []) + sqlite_files(settings))


def secure_private_paths(settings: Settings) -> list[str]:
    """Take group and other permissions off lap-tui's own files (dirs 0700, files 0600): one line
    per change, to be said once. Only what this user owns and nothing through a link; creates nothing."""
    import stat

    fixed = []
    for path in private_paths(settings):
        try:
            st = os.lstat(path)
        except OSError:
            continue
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid() or not mode & 0o077:
            continue
        new = mode & ~0o077 | (PRIVATE_DIR if stat.S_ISDIR(st.st_mode) else PRIVATE_FILE)
        try:
            os.chmod(path, new)
        except OSError:
            continue
        fixed.append(f"{path} could be read by other users of this host (mode {mode:o}): now {new:o}")
    return fixed


def announce_private_paths(settings: Settings) -> None:
    """secure_private_paths, said on stderr (at start: a later start has nothing left to say)."""
    import sys

    for line in secure_private_paths(settings):
        print(f"lap-tui: {line}", file=sys.stderr)
