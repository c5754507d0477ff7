"""``python -m consumers NAME``: run one consumer (as a container does)."""

from __future__ import annotations

import sys

from pipeline.app import load_app
from pipeline.consume.process import EXIT_CONFIG
from pipeline.consume.serve import serve
from pipeline.errors import ConfigurationError
from pipeline.logs import configure_logging
from pipeline.settings import PipelineSettings
from pipeline.tracing.sdk import configure_tracing


def main(argv: list[str]) -> int:
    configure_logging()
    settings = PipelineSettings()
    if len(argv) != 1:
        try:
            names = ", ".join(load_app(settings.app).worker_names)
        except ConfigurationError as exc:
            names = f"(cannot load the registry: {exc})"
        print(f"usage: python -m consumers NAME   (one of: {names})", file=sys.stderr)
        return EXIT_CONFIG
    telemetry = configure_tracing(settings, component=argv[0])
    try:
        return serve(settings, argv[0])
    finally:
        if telemetry is not None:
            telemetry.shutdown()  # export the last spans before the process ends


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
