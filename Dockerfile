# rootfi-sync and its locked dependencies, for Docker and Kubernetes work pools.
#   docker build -t <registry>/rootfi-sync:<tag> .
# The flow code sits in /opt/rootfi-sync (the image's working folder), so a deployment built
# on this image needs no pull step but `set_working_directory: /opt/rootfi-sync`: see the
# commented build/push steps in prefect.yaml and docs/running-on-prefect.md. Untested here:
# the test machine has no Docker daemon.
FROM python:3.11-slim

COPY --from=ghcr.io/astral-sh/uv:0.13.8 /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
WORKDIR /opt/rootfi-sync

# The dependencies first, exactly as uv.lock pins them (a layer reused until the lock changes).
# (sandbox/ is a workspace member the lock names; a worker does not install it.)
COPY pyproject.toml uv.lock README.md ./
COPY sandbox/pyproject.toml sandbox/README.md ./sandbox/
RUN uv sync --locked --no-dev --no-install-project

COPY rootfi_sync ./rootfi_sync
COPY tasks ./tasks
COPY flows ./flows
COPY deployments ./deployments
COPY prefect.yaml ./
RUN uv sync --locked --no-dev

# Settings come from the work pool's job variables (env); the API key from the Secret block.
CMD ["prefect", "--help"]
