"""``pipeline asyncapi [--format yaml|json] [--output FILE]``: the App's AsyncAPI 3.0 document."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from pipeline.app import load_app
from pipeline.contract import asyncapi_document
from pipeline.errors import ConfigurationError
from pipeline.settings import PipelineSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "asyncapi", help="write the AsyncAPI 3.0 document of PIPELINE_APP's events"
    )
    parser.add_argument("--format", choices=("yaml", "json"), default="yaml",
                        help="output format (default yaml)")
    parser.add_argument("--output", "-o", type=Path, metavar="FILE",
                        help="write here instead of standard output")
    parser.add_argument("--title", help="info.title (default: '<PIPELINE_SERVICE_NAME> events')")
    parser.add_argument("--api-version", default="1.0.0", help="info.version (default 1.0.0)")
    parser.set_defaults(run=run)


def render(document: dict[str, Any], form: str) -> str:
    """The document as YAML or JSON text."""
    if form == "json":
        return json.dumps(document, indent=2) + "\n"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def run(args: argparse.Namespace, settings: PipelineSettings) -> int:
    document = asyncapi_document(
        load_app(settings.app), settings, title=args.title, version=args.api_version
    )
    text = render(document, args.format)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        args.output.write_text(text)
    except OSError as exc:
        raise ConfigurationError(f"cannot write {args.output}: {exc.strerror}") from None
    print(f"AsyncAPI {document['asyncapi']} document with {len(document['channels'])} channels "
          f"and {len(document['operations'])} operations written to {args.output}")
    return 0
