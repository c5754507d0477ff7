"""The official AsyncAPI parser (npm ``@asyncapi/parser``), installed once into .cache/.

The test installs it on first use (about 15 s, 55 MB) with the machine's npm;
``.ci/run`` makes sure node and npm exist. Nothing is mocked: the document
is parsed and validated by the same code AsyncAPI Studio uses.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PARSER_DIR = ROOT / ".cache" / "asyncapi-parser"
PARSER_VERSION = "3.6.3"
SCRIPT = Path(__file__).with_name("asyncapi_validate.cjs")


class NoNodeError(RuntimeError):
    """node or npm is missing."""


@dataclass(frozen=True)
class Diagnostic:
    severity: str
    code: str
    message: str
    path: str


def ensure_parser() -> Path:
    """The directory holding ``node_modules/@asyncapi/parser``; installs it if missing."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise NoNodeError(
                f"{tool} is not installed: `apt-get install -y nodejs npm` (.ci/run does this) "
                "to validate the AsyncAPI document with the official parser"
            )
    installed = PARSER_DIR / "node_modules" / "@asyncapi" / "parser" / "package.json"
    PARSER_DIR.mkdir(parents=True, exist_ok=True)
    # `make test` runs tests in parallel workers: one installs, the others wait for it.
    with open(PARSER_DIR.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not installed.exists():
            subprocess.run(
                ["npm", "install", "--prefix", str(PARSER_DIR), "--no-audit", "--no-fund",
                 "--loglevel=error", f"@asyncapi/parser@{PARSER_VERSION}"],
                check=True, capture_output=True, text=True, timeout=300,
            )
    return PARSER_DIR


def validate(document: Path) -> tuple[bool, list[Diagnostic]]:
    """(parsed, diagnostics) for an AsyncAPI file (YAML or JSON)."""
    result = subprocess.run(
        ["node", str(SCRIPT), str(ensure_parser()), str(document)],
        check=True, capture_output=True, text=True, timeout=120,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    summary = lines.pop()
    return bool(summary["parsed"]), [Diagnostic(**line) for line in lines]


def problems(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Errors and warnings; the parser's 'a newer AsyncAPI exists' note is only info."""
    return [d for d in diagnostics if d.severity in ("error", "warning")]
