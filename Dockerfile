# syntax=docker/dockerfile:1
#
# The ecsrole operator image: `docker build -t ecsrole:0.1.0 .` (BuildKit; amd64 and arm64).
#
# - Two stages: `build` makes the wheel and a virtual environment from uv.lock, with every
#   dependency checked against the lock's hashes; the final stage gets only that environment.
#   No compiler in either (every dependency is a wheel; --no-build refuses anything else).
# - Runs as UID/GID 65532 (non-root), on a read-only root filesystem: bytecode is compiled at
#   build time and never written at run time; HOME and TMPDIR point at /tmp, the only writable
#   path, which the Deployment mounts as an emptyDir.
# - Base images are pinned to exact releases (Python 3.11.14, Debian 12 "bookworm"; uv 0.13.9,
#   the same uv the Makefile installs). Pin their digests too in your release pipeline:
#     docker buildx imagetools inspect python:3.11.14-slim-bookworm   # -> Digest: sha256:...
#     docker build --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest> \
#                  --build-arg UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9@sha256:<digest> .
#   (The development machines of this project cannot reach a container registry, so no digest
#   here has been looked up and checked; none is written down unverified.)
# - hadolint-clean: tests/e2e/test_manifests.py runs hadolint (from the dev dependencies).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
# The build backend (hatchling) and its dependencies, pinned with hashes: uv.lock does not
# cover build requirements. (A file, not a heredoc: buildah 1.28, Debian 12's, has no heredocs.)
COPY hack/image/build-constraints.txt /build-constraints.txt

COPY pyproject.toml uv.lock README.md ./
COPY operator/ ./operator/
# The runtime dependencies exactly as locked (with hashes), then the wheel of the project itself.
RUN uv export --frozen --no-dev --no-emit-project --format requirements-txt \
        --output-file /requirements.txt \
    && uv build --wheel --out-dir /dist \
        --build-constraints /build-constraints.txt --require-hashes \
    && python -m venv --without-pip /opt/ecsrole \
    && uv pip install --python /opt/ecsrole/bin/python --require-hashes --no-deps --no-build \
        --compile-bytecode --requirements /requirements.txt \
    && uv pip install --python /opt/ecsrole/bin/python --no-deps --no-build \
        --compile-bytecode /dist/*.whl \
    && /opt/ecsrole/bin/ecsrole --version

FROM ${PYTHON_IMAGE}
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=""
ARG CREATED=""
ARG SOURCE=""
LABEL org.opencontainers.image.title="ecsrole" \
      org.opencontainers.image.description="Kubernetes operator that keeps AWS ECS task execution IAM roles exactly as EcsExecutionRole resources declare them, and alerts on drift" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
# A passwd entry for UID 65532: kopf asks for the user name (getpass), which fails for a UID
# the system does not know; LOGNAME below answers first, so another runAsUser works too. pip,
# setuptools and wheel of the official base image are not needed at run time (a base built
# from Debian packages, as `make test-cluster` uses, has none).
RUN groupadd --system --gid 65532 ecsrole \
    && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
        --shell /usr/sbin/nologin ecsrole \
    && if python -m pip --version >/dev/null 2>&1; then \
        python -m pip uninstall --yes --no-cache-dir pip setuptools wheel; fi
COPY --from=build /opt/ecsrole /opt/ecsrole
# glibc: fixed mmap/trim thresholds and two arenas give memory back after bursts (a start
# with thousands of objects); see docs/performance.md for the figures with and without.
ENV PATH=/opt/ecsrole/bin:$PATH \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=65536 \
    MALLOC_TRIM_THRESHOLD_=65536 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    LOGNAME=ecsrole \
    ECSROLE_CONFIG=/etc/ecsrole/config.yaml
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 8081
ENTRYPOINT ["ecsrole"]
CMD ["run"]
