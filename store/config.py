"""The one config file: TOML under the platform's config folder, read strictly.

It holds what a person sets once (the agent's and the drafting teacher's endpoint and model
names, the default base model, the app's theme), never a key: keys come from the environment
only. Each setting has an environment variable that overrides the file.

```toml
[agent]                 # the model that leads the interview (model mode)
base_url = "http://localhost:11434/v1"
model = "qwen2.5:7b"

[teacher]               # the model /draft asks; the agent's when unset
model = "local"

[defaults]
base_model = "SmolLM2-135M-Instruct"

[ui]
theme = "textual-dark"
```
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from store.errors import InputError
from store.projects import DEFAULT_BASE_MODEL

CONFIG_FILE_ENV = "TUNESMITH_CONFIG"
"""Another config file than the platform's (``tunesmith/config.toml`` in its config folder)."""

SETTINGS: Mapping[str, Mapping[str, str]] = {
    "agent": {"base_url": "TUNESMITH_AGENT_BASE_URL", "model": "TUNESMITH_AGENT_MODEL"},
    "teacher": {"base_url": "TUNESMITH_TEACHER_BASE_URL", "model": "TUNESMITH_TEACHER_MODEL"},
    "defaults": {"base_model": "TUNESMITH_BASE_MODEL"},
    "ui": {"theme": "TUNESMITH_THEME"},
}
"""Every section and key the file may hold, each with the environment variable that overrides it."""

_KEY_NAMES = ("api_key", "key", "token", "password", "secret")
"""Names of settings that would hold a secret, refused with a pointer to the environment."""


@dataclass(frozen=True)
class EndpointSettings:
    """An OpenAI-compatible endpoint as configured: where it is and which model; no key."""

    base_url: str | None = None
    """None means OpenAI's own API (or, for the teacher, the agent's endpoint)."""
    model: str | None = None
    """None leaves the agent guided and the teacher the agent's model or the local one."""


@dataclass(frozen=True)
class Settings:
    """The settings in force: the config file's, each overridden by its environment variable."""

    agent: EndpointSettings
    teacher: EndpointSettings
    base_model: str
    """The base model of a new project."""
    theme: str | None
    """The app's Textual theme; None keeps Textual's default."""


DEFAULT_SETTINGS = Settings(
    agent=EndpointSettings(), teacher=EndpointSettings(), base_model=DEFAULT_BASE_MODEL, theme=None
)
"""The settings with no config file and no environment variable set."""


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the config file is read from (it need not exist)."""
    env = os.environ if environ is None else environ
    configured = env.get(CONFIG_FILE_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_config_dir("tunesmith", appauthor=False)) / "config.toml"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings in force; a config file that cannot be used is an InputError naming it."""
    env = os.environ if environ is None else environ
    path = config_path(env)
    values = _read_file(path)
    for section, keys in SETTINGS.items():
        for key, variable in keys.items():
            override = env.get(variable, "").strip()
            if override:
                values.setdefault(section, {})[key] = override
    return Settings(
        agent=EndpointSettings(**values.get("agent", {})),
        teacher=EndpointSettings(**values.get("teacher", {})),
        base_model=values.get("defaults", {}).get("base_model", DEFAULT_BASE_MODEL),
        theme=values.get("ui", {}).get("theme"),
    )


def _read_file(path: Path) -> dict[str, dict[str, str]]:
    """The file's settings by section; no file means none. Unknown names and types are errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read the config file ({error})") from error
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{path}: not valid TOML: {error}") from error
    values: dict[str, dict[str, str]] = {}
    for section, table in document.items():
        if section not in SETTINGS:
            known = ", ".join(f"[{name}]" for name in SETTINGS)
            raise InputError(f"{path}: unknown section [{section}] (known: {known})")
        if not isinstance(table, dict):
            raise InputError(f"{path}: {section} must be a [{section}] table")
        for key, value in table.items():
            name = f"{section}.{key}"
            if key.lower() in _KEY_NAMES or key.lower().endswith("_key"):
                raise InputError(
                    f"{path}: {name}: keys are never kept in the config file;"
                    " set TUNESMITH_AGENT_API_KEY or OPENAI_API_KEY in the environment"
                )
            if key not in SETTINGS[section]:
                known = ", ".join(SETTINGS[section])
                raise InputError(f"{path}: unknown key {name} (known in [{section}]: {known})")
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"{path}: {name} must be a non-empty string")
            values.setdefault(section, {})[key] = value.strip()
    return values
