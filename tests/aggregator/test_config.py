"""Config: one YAML file, validated, with precise errors and ${ENV} interpolation."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.cli import main
from aggregator.config import ConfigError, load, parse


def test_claude_desktop_mcp_servers_section_is_accepted_as_is() -> None:
    config = parse(
        {
            "mcpServers": {
                "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"], "env": {"T": "x"}},
                "remote": {"url": "https://example.com/mcp", "headers": {"Authorization": "Bearer t"}},
            }
        }
    )
    assert config.servers["github"].kind == "stdio"
    assert config.servers["remote"].kind == "http"


def test_errors_name_the_file_the_key_path_and_why(tmp_path: Path) -> None:
    path = tmp_path / "toolmux.yaml"
    path.write_text(
        "mcpServers:\n  Bad-Name: {command: x}\n  ok:\n    command: x\n    url: http://y\n"
        "auth:\n  keys: [{name: k, key: short}]\n  colour: blue\n"
    )
    with pytest.raises(ConfigError) as caught:
        load(path)
    problems = "\n".join(caught.value.problems)
    assert f"{path}:3: mcpServers.ok: give only one of command, url, builtin" in problems
    assert f"{path}:7: auth.keys[0].key: String should have at least 16 characters" in problems
    assert f"{path}:8: auth.colour: unknown key" in problems


def test_claude_desktop_server_names_load_as_prefixes_that_split_cleanly_at_the_first_separator() -> None:
    config = parse(
        {"mcpServers": {"brave-search": {"command": "x"}, "GitHub": {"command": "y"}, "ok_1": {"url": "http://h"}}}
    )
    assert list(config.servers) == ["brave_search", "github", "ok_1"]
    assert config.servers["brave_search"].command == "x"


def test_two_server_names_with_the_same_prefix_are_a_load_error_naming_both() -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"mcpServers": {"brave-search": {"command": "x"}, "Brave Search": {"command": "y"}}})
    assert "'brave-search'" in caught.value.problems[0] and "'Brave Search'" in caught.value.problems[0]


def test_a_server_name_with_no_letter_or_digit_is_refused() -> None:
    with pytest.raises(ConfigError, match="mcpServers: "):
        parse({"mcpServers": {"--": {"command": "x"}}})


def test_environment_variables_are_interpolated_in_values_with_defaults() -> None:
    config = parse(
        {"mcpServers": {"gh": {"command": "x", "env": {"TOKEN": "${GH_TOKEN}", "MODE": "${GH_MODE:-fast}"}}}},
        environ={"GH_TOKEN": "secret-1"},
    )
    assert config.servers["gh"].env == {"TOKEN": "secret-1", "MODE": "fast"}


def test_a_missing_environment_variable_is_an_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"auth": {"master_key": "${NOT_SET_ANYWHERE}"}}, "f.yaml", environ={})
    assert caught.value.problems == [
        "f.yaml: auth.master_key: environment variable NOT_SET_ANYWHERE is not set (use ${NOT_SET_ANYWHERE:-default})"
    ]


def test_interpolated_values_cannot_inject_yaml() -> None:
    config = parse({"mcpServers": {"x": {"command": "${EVIL}"}}}, environ={"EVIL": "a\nmcpServers: {}"})
    assert config.servers["x"].command == "a\nmcpServers: {}"


def test_yaml_syntax_errors_report_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("mcpServers:\n  a: {command: x\n")
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert "line 3" in caught.value.problems[0] and "invalid YAML" in caught.value.problems[0]


def test_config_check_prints_precise_errors_and_exits_nonzero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("mcpServers:\n  x: {command: a, timeouts: {call: -1}}\n")
    good = tmp_path / "good.yaml"
    good.write_text("builtins: []\nmcpServers:\n  x: {command: a}\n")
    assert main(["config", "check", str(bad)]) == 2
    assert f"{bad}:2: mcpServers.x.timeouts.call: Input should be greater than 0" in capsys.readouterr().err
    assert main(["config", "check", str(good)]) == 0
    assert "ok (1 servers" in capsys.readouterr().out


def test_config_check_validates_a_builtin_servers_own_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "storage.yaml"
    path.write_text("builtins: [storage]\nmcpServers:\n  storage:\n    config: {buckets: [{name: 7}]}\n")
    assert main(["config", "check", str(path)]) == 2
    assert f"{path}:4: mcpServers.storage.config.buckets[0].name: " in capsys.readouterr().err


def test_config_check_reports_every_mistake_of_a_file_in_one_run_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "three.yaml"
    path.write_text(
        "server:\n"
        "  port: seventy\n"  # 2: not a number
        "builtins: [storage]\n"
        "mcpServers:\n"
        "  brave-search:\n"
        "    command: npx\n"
        "    restart: {polcy: always}\n"  # 7: misspelt key
        "  storage:\n"
        "    config:\n"
        "      buckets: [{name: 7}]\n"  # 10: a built-in's own section
    )
    assert main(["config", "check", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(": ")[0:2] for line in lines] == [
        [f"{path}:2", "server.port"],
        [f"{path}:7", "mcpServers.brave_search.restart.polcy"],
        [f"{path}:10", "mcpServers.storage.config.buckets[0].name"],
    ]
    assert not any("(root)" in line or "Value error" in line for line in lines)
