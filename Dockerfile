# Container image of the MetaStudio callback receiver.
#
#   docker build -t receiver \
#     --build-arg VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)" .
#   docker run --read-only --tmpfs /tmp -p 8080:8080 --stop-timeout 30 \
#     -v "$PWD/receiver.toml:/etc/receiver/receiver.toml:ro" -v receiver-data:/var/lib/receiver \
#     receiver
#
# scripts/image-test builds it with podman and checks it end to end. Needs BuildKit (the
# default builder since Docker 23) for the bind mounts. The root filesystem may be
# read-only: the only writable path is the VOLUME /var/lib/receiver (sqlite intake, dead
# letters, jsonl output), which uid 10001 must be able to write; mount a tmpfs on /tmp.
# A stop drains for up to server.graceful_shutdown_seconds (20 s by default) before the
# process exits: give `docker stop` more than that (--stop-timeout 30), or it kills it.

ARG PYTHON_TAG=3.11.14
ARG DEBIAN_RELEASE=bookworm

# ---- build stage: every wheel the receiver needs, compilers allowed here only ----
FROM python:${PYTHON_TAG}-${DEBIAN_RELEASE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Every dependency exactly as locked, each file checked against its hash (scripts/lock).
# A pip configuration (an index mirror, a proxy's CA) may come in as build secrets, which
# never reach a layer: --secret id=pip.conf,src=... --secret id=build-ca,src=...
COPY requirements.lock ./
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=build-ca \
    pip wheel --require-hashes --wheel-dir /wheels -r requirements.lock
COPY pyproject.toml README.md ./
COPY receiver ./receiver
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=build-ca \
    pip wheel --no-deps --wheel-dir /wheels/receiver .

# ---- runtime stage: slim base, no compilers, fixed non-root user ----
FROM python:${PYTHON_TAG}-slim-${DEBIAN_RELEASE} AS runtime

ARG PYTHON_TAG
ARG DEBIAN_RELEASE
# The version in pyproject.toml; a different one fails the build rather than mislabel it.
ARG VERSION=""
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="receiver" \
      org.opencontainers.image.description="Verified, durable receiver for Huawei Cloud MetaStudio live-stream callbacks" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:${PYTHON_TAG}-slim-${DEBIAN_RELEASE}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/var/lib/receiver \
    TMPDIR=/tmp \
    RECEIVER_CONFIG=/etc/receiver/receiver.toml

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

RUN groupadd --system --gid 10001 receiver \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/receiver --shell /usr/sbin/nologin receiver \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/receiver \
    && install -d -o root -g 10001 -m 0750 /etc/receiver

# Only the wheels reach this stage, through a bind mount: no build tools, no wheel layer.
# The locked dependencies are checked against their hashes once more as they install.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    --mount=type=bind,from=builder,source=/src/requirements.lock,target=/tmp/requirements.lock \
    pip install --no-index --find-links=/wheels --require-hashes -r /tmp/requirements.lock \
    && pip install --no-index --no-deps /wheels/receiver/receiver-*.whl \
    && installed="$(python -c 'from importlib.metadata import version; print(version("receiver"))')" \
    && if [[ -n "${VERSION}" && "${VERSION}" != "${installed}" ]]; then \
        echo "VERSION=${VERSION} but pyproject.toml says ${installed}" >&2; exit 1; fi \
    && receiver --help > /dev/null

WORKDIR /var/lib/receiver
VOLUME ["/var/lib/receiver"]
USER 10001:10001
EXPOSE 8080

# Reads the same configuration as serve (RECEIVER_CONFIG and RECEIVER_* variables): the
# port, a certificate or --dev-tls are followed.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
    CMD ["receiver", "healthcheck", "--timeout", "3"]

ENTRYPOINT ["receiver"]
CMD ["serve", "--config", "/etc/receiver/receiver.toml"]
