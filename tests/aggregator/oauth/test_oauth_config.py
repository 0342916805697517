"""The `oauth:` sections: mistakes are config errors naming the field, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aggregator import cli
from aggregator.config import ConfigError, parse


def test_an_external_provider_without_an_issuer_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"oauth": {"mode": "external"}}, "<test>")
    assert any("oauth" in problem for problem in caught.value.problems)


def test_client_credentials_without_a_secret_and_oauth_on_a_stdio_server_are_config_errors() -> None:
    no_secret = {"mcpServers": {"r": {"url": "http://127.0.0.1:9/mcp", "oauth": {"client_id": "x"}}}}
    on_stdio = {"mcpServers": {"s": {"command": "true", "oauth": {"grant": "authorization_code"}}}}
    for config in (no_secret, on_stdio):
        with pytest.raises(ConfigError) as caught:
            parse(config, "<test>")
        assert any("mcpServers" in problem for problem in caught.value.problems)


def test_upstream_login_refuses_a_server_without_an_oauth_section(tmp_path: Path) -> None:
    path = tmp_path / "toolmux.yaml"
    config = {"builtins": [], "server": {"data_dir": str(tmp_path)}, "mcpServers": {"plain": {"url": "http://x/mcp"}}}
    path.write_text(yaml.safe_dump(config))
    assert cli.main(["upstream", "login", "plain", "--config", str(path)]) == 2
