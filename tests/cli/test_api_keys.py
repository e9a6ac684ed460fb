"""The servers' API key files: private, kept across restarts, the environment first."""

from __future__ import annotations

import pytest

from runengine.cli.api_keys import api_key
from runengine.cli.errors import CLIError

ENV = "RUNENGINE_TEST_API_KEY"


def test_a_key_is_made_once_private_and_kept(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    path = tmp_path / "deep" / "api_key"
    key, where = api_key(path, ENV)
    assert where == str(path) and len(key) == 64 and path.stat().st_mode & 0o777 == 0o600
    assert api_key(path, ENV) == (key, str(path))  # a restarted server keeps its clients' key


def test_an_empty_file_gets_a_key_and_a_shared_one_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    path = tmp_path / "api_key"
    path.touch(mode=0o600)
    key, _ = api_key(path, ENV)
    assert key and path.read_text() == key
    path.chmod(0o644)
    with pytest.raises(CLIError, match=f"{path} is readable by others"):
        api_key(path, ENV)


def test_the_environment_wins_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, "from-the-environment")
    assert api_key(tmp_path / "api_key", ENV) == ("from-the-environment", f"${ENV}")
    assert not (tmp_path / "api_key").exists()
