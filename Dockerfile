# syntax=docker/dockerfile:1
# One image for every consumer, the admin notifier and the CLI:
#   docker run IMAGE python -m consumers billing
#   docker run IMAGE pipeline topology apply
# Configured only by environment (PIPELINE_*, OTEL_*); no credentials inside.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: install the pinned dependencies and the project into a venv -----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN pip install --require-virtualenv --no-deps -r requirements.lock && pip check
COPY pyproject.toml README.md LICENSE ./
COPY topology ./topology
COPY pipeline ./pipeline
COPY consumers ./consumers
# --no-deps: everything it needs is pinned above; a missing pin fails here.
RUN pip install --require-virtualenv --no-deps . \
    && pip check \
    && python -m pip uninstall --yes pip setuptools

# --- runtime: the venv only, no compilers, no pip, not root ------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 pipeline \
    && useradd --system --uid 10001 --gid pipeline --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin pipeline
# The ledger's SQLite file and the console's audit list live here (volumes in
# docker-compose.yml); a named volume takes its directory's owner, so the
# non-root user can write them.
RUN mkdir -p /var/lib/pipeline /var/lib/pipeline-console \
    && chown pipeline:pipeline /var/lib/pipeline /var/lib/pipeline-console
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIPELINE_HEALTH_PORT=8000 \
    PIPELINE_HEALTH_HOST=0.0.0.0
WORKDIR /app
USER pipeline:pipeline
EXPOSE 8000
# Consumers drain in-flight work on SIGTERM (PIPELINE_SHUTDOWN_TIMEOUT_S).
STOPSIGNAL SIGTERM
# /readyz: connected, topology applied and consuming (pipeline/ops/health.py).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "pipeline.ops.health", "/readyz"]
CMD ["python", "-m", "consumers"]
