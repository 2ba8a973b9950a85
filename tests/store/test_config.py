"""The config file: read strictly, overridden by the environment, never holding a key."""

from __future__ import annotations

from pathlib import Path

import pytest

from store.config import CONFIG_FILE_ENV, EndpointSettings, config_path, load_settings
from store.errors import InputError
from store.projects import DEFAULT_BASE_MODEL


def _environ(path: Path, **overrides: str) -> dict[str, str]:
    return {CONFIG_FILE_ENV: str(path), **overrides}


def test_no_file_means_the_defaults(tmp_path: Path) -> None:
    settings = load_settings(_environ(tmp_path / "absent.toml"))
    assert settings.agent == EndpointSettings()
    assert settings.teacher == EndpointSettings()
    assert settings.base_model == DEFAULT_BASE_MODEL
    assert settings.theme is None


def test_the_file_sets_every_section(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[agent]\nbase_url = "http://localhost:11434/v1"\nmodel = "qwen2.5:7b"\n'
        '[teacher]\nmodel = "local"\n[defaults]\nbase_model = "/models/qwen"\n'
        '[ui]\ntheme = "nord"\n',
        encoding="utf-8",
    )
    settings = load_settings(_environ(path))
    assert settings.agent == EndpointSettings("http://localhost:11434/v1", "qwen2.5:7b")
    assert settings.teacher == EndpointSettings(None, "local")
    assert settings.base_model == "/models/qwen"
    assert settings.theme == "nord"


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[agent]\nmodel = "from-file"\n[ui]\ntheme = "nord"\n', encoding="utf-8")
    settings = load_settings(_environ(path, TUNESMITH_AGENT_MODEL="from-env", TUNESMITH_THEME="  "))
    assert settings.agent.model == "from-env"
    # A blank variable overrides nothing.
    assert settings.theme == "nord"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[agent]\nmodle = "x"\n', "unknown key agent.modle (known in [agent]: base_url, model)"),
        ('[agents]\nmodel = "x"\n', "unknown section [agents]"),
        ("[agent]\nmodel = 3\n", "agent.model must be a non-empty string"),
        ('[agent]\napi_key = "sk-123"\n', "agent.api_key: keys are never kept in the config file"),
        ('agent = "x"\n', "agent must be a [agent] table"),
        ("[agent\n", "not valid TOML"),
    ],
)
def test_a_bad_file_is_one_error_naming_the_file_and_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as raised:
        load_settings(_environ(path))
    assert raised.value.message.startswith(f"{path}: ")
    assert message in raised.value.message
    assert "sk-123" not in raised.value.message


def test_the_file_lies_in_the_platform_config_folder_unless_named() -> None:
    assert config_path({}).name == "config.toml"
    assert config_path({}).parent.name == "tunesmith"
    assert config_path({CONFIG_FILE_ENV: "~/t.toml"}) == Path("~/t.toml").expanduser()
