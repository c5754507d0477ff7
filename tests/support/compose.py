"""Read docker-compose.yml the way Compose does: YAML anchors, then ${VAR} interpolation.

There is no Docker engine here, so the tests read the file themselves: a
small subset of Compose's interpolation (``${VAR}``, ``${VAR:-default}``,
``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}``, ``$$``) is enough
for our file, and anything else fails loudly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
OUR_IMAGE_SERVICES = "build"  # a service of ours builds (or shares) the Dockerfile's image

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    pass


def load_raw(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The YAML document with anchors and ``<<`` merges resolved, not interpolated."""
    return dict(yaml.safe_load(path.read_text()))


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=VALUE lines of a .env file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def variables_used(text: str) -> dict[str, str | None]:
    """Every variable the text references -> its operator (``:-``, ``:?`` ...) or None."""
    used: dict[str, str | None] = {}
    for match in _VARIABLE.finditer(text):
        name = match["name"] or match["bare"]
        if name:
            used.setdefault(name, match["op"])
    return used


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Replace ${...} in every string of ``value`` (recursively), as Compose does."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: _substitute(m, env), value)
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    return value


def _substitute(match: re.Match[str], env: Mapping[str, str]) -> str:
    if match["escaped"]:
        return "$"
    name = match["name"] or match["bare"]
    op, arg = match["op"], match["arg"] or ""
    value = env.get(name)
    is_unset_or_empty = not value
    if op == ":-":
        return arg if is_unset_or_empty else str(value)
    if op == "-":
        return arg if value is None else value
    if (op == ":?" and is_unset_or_empty) or (op == "?" and value is None):
        raise InterpolationError(f"{name}: {arg}")
    return value or ""


def load(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose document interpolated with ``env`` (default: .env.example)."""
    return dict(interpolate(load_raw(), read_env_file() if env is None else env))


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment`` (mapping or KEY=VALUE list) as a dict of strings."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.partition("=")[::2] for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def our_services(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the project's image (they have a ``build`` section)."""
    return {name: s for name, s in document["services"].items() if OUR_IMAGE_SERVICES in s}


def bind_mounts(service: Mapping[str, Any]) -> dict[str, Path]:
    """Container path -> repository path of the service's ``./...`` bind mounts."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.split(":")[0]
        else:
            source, target = volume.get("source", ""), volume.get("target", "")
        if source.startswith("."):
            mounts[target] = (ROOT / source).resolve()
    return mounts


def compose_schema() -> dict[str, Any]:
    """The Compose Specification JSON schema, as vendored by check-jsonschema."""
    path = resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    return dict(json.loads(path.read_text()))


def seconds(duration: str) -> float:
    """A Compose duration ("1m30s", "40s", "500ms") in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Compose duration: {duration!r}")
    return sum(float(n) * units[u] for n, u in parts)
