"""Settings: precedence, sources, secrets kept masked, and clear errors for broken input."""

from __future__ import annotations

from pathlib import Path

import pytest

from lap_tui.config import load_settings, sqlite_path
from lap_tui.domain.errors import ConfigError
from lap_tui.domain.secrets import MASK


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "XDG_STATE_HOME": str(tmp_path / "state"), **extra}


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config" / "lap-tui" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_live_under_the_xdg_dirs(tmp_path):
    s = load_settings(env_for(tmp_path), cwd=tmp_path)
    assert s.database_url == f"sqlite://{tmp_path}/data/lap-tui/lap.db"
    assert sqlite_path(s.database_url) == f"{tmp_path}/data/lap-tui/lap.db"
    assert s.values["database_url"].source == "default"
    assert s.config_file is None and s.container_env == {}


def test_precedence_environment_then_dotenv_then_file(tmp_path):
    cfg = write_config(tmp_path, 'team = "from-file"\ntheme = "lap-light"\nlitellm_api_base = "http://file:4000"\n')
    (tmp_path / ".env").write_text("LAP_TEAM=from-dotenv\nLITELLM_API_BASE=http://dotenv:4000\n")
    s = load_settings(env_for(tmp_path, LITELLM_API_BASE="http://env:4000"), cwd=tmp_path)
    assert s["litellm_api_base"] == "http://env:4000"
    assert s.values["litellm_api_base"].source == "environment LITELLM_API_BASE"
    assert s["team"] == "from-dotenv" and s.values["team"].source == ".env LAP_TEAM"
    assert s["theme"] == "lap-light" and s.values["theme"].source == f"config file {cfg}"
    assert s.config_file == cfg


def test_container_env_is_stripped_and_masked(tmp_path):
    (tmp_path / ".env").write_text("CONTAINER_ENV_GITHUB_TOKEN=ghp_dotenv\nCONTAINER_ENV_ONLY_DOTENV=abcd1234\n")
    s = load_settings(env_for(tmp_path, CONTAINER_ENV_GITHUB_TOKEN="ghp_environment", LITELLM_API_KEY="sk-master-1",
                              CONTAINER_ENV_="ignored"), cwd=tmp_path)
    assert s.container_env == {"GITHUB_TOKEN": "ghp_environment", "ONLY_DOTENV": "abcd1234"}
    desc = s.describe()
    text = repr(desc)
    for secret in ("ghp_environment", "ghp_dotenv", "abcd1234", "sk-master-1"):
        assert secret not in text
    assert desc["container_env"]["GITHUB_TOKEN"] == {"value": MASK, "source": "environment CONTAINER_ENV_GITHUB_TOKEN"}
    assert desc["litellm_api_key"]["value"] == MASK
    red = s.redactor
    assert red("token ghp_environment and sk-master-1") == f"token {MASK} and {MASK}"


def test_dotenv_is_not_exported_to_the_process(tmp_path, monkeypatch):
    monkeypatch.delenv("CONTAINER_ENV_LEAK_CHECK", raising=False)
    (tmp_path / ".env").write_text("CONTAINER_ENV_LEAK_CHECK=secret-value\n")
    load_settings(env_for(tmp_path), cwd=tmp_path)
    import os

    assert "CONTAINER_ENV_LEAK_CHECK" not in os.environ


def test_database_password_is_masked(tmp_path):
    s = load_settings(env_for(tmp_path, LAP_DATABASE_URL="postgresql://lap:hunter22@db.example:5432/lap"),
                      cwd=tmp_path)
    shown = s.describe()["database_url"]["value"]
    assert "hunter22" not in shown and shown == f"postgresql://lap:{MASK}@db.example:5432/lap"
    assert s.redactor("password hunter22") == f"password {MASK}"


@pytest.mark.parametrize("url, message", [
    ("mysql://x/y", "not supported"),
    ("sqlite://", "names no file"),
    ("sqlite://host/file.db", "names no file"),
    ("postgresql:///db", "names no host"),
    ("postgresql://h:notaport/db", "malformed"),
    ("just-a-path.db", "not supported"),
])
def test_malformed_database_url(tmp_path, url, message):
    with pytest.raises(ConfigError, match=message) as exc:
        load_settings(env_for(tmp_path, LAP_DATABASE_URL=url), cwd=tmp_path)
    assert "sqlite:///" in str(exc.value)  # the fix is part of the message


def test_toml_syntax_error_names_file_and_line(tmp_path):
    cfg = write_config(tmp_path, 'team = "a"\ntheme = \n')
    with pytest.raises(ConfigError) as exc:
        load_settings(env_for(tmp_path), cwd=tmp_path)
    assert str(cfg) in str(exc.value) and "line 2" in str(exc.value)


def test_unknown_config_key_and_bad_types(tmp_path):
    write_config(tmp_path, 'tema = "x"\n')
    with pytest.raises(ConfigError, match="unknown key 'tema'"):
        load_settings(env_for(tmp_path), cwd=tmp_path)
    write_config(tmp_path, "team = 3\n")
    with pytest.raises(ConfigError, match="must be a string"):
        load_settings(env_for(tmp_path), cwd=tmp_path)
    write_config(tmp_path, '[keys]\n"app.quit" = 5\n')
    with pytest.raises(ConfigError, match=r"\[keys\]"):
        load_settings(env_for(tmp_path), cwd=tmp_path)
    with pytest.raises(ConfigError, match="true or false"):
        load_settings(env_for(tmp_path, LAP_ALLOW_UNISOLATED="maybe"), cwd=tmp_path)


def test_key_bindings_and_booleans_from_file(tmp_path):
    write_config(tmp_path, 'allow_unisolated = true\n[keys]\n"app.quit" = "ctrl+q"\n')
    s = load_settings(env_for(tmp_path), cwd=tmp_path)
    assert s["allow_unisolated"] is True and s.keys == {"app.quit": "ctrl+q"}
