# Container image of the MetaStudio callback receiver.
#
#   docker build -t receiver:0.1.0 .
#   docker run --read-only --tmpfs /tmp -p 8080:8080 \
#     -v "$PWD/receiver.toml:/etc/receiver/receiver.toml:ro" -v receiver-data:/var/lib/receiver \
#     receiver:0.1.0
#
# Needs BuildKit (the default builder since Docker 23) for the bind mount of the wheels.
# The root filesystem may be read-only: the only writable path is the VOLUME
# /var/lib/receiver (sqlite intake, dead letters, jsonl output). Mount an emptyDir or a
# tmpfs on /tmp as well; Python falls back to the working directory (the volume) when
# /tmp is not writable.

ARG PYTHON_VERSION=3.11.14
ARG DEBIAN_RELEASE=bookworm

# ---- build stage: every wheel the receiver needs, compilers allowed here only ----
FROM python:${PYTHON_VERSION}-${DEBIAN_RELEASE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY receiver ./receiver
RUN pip wheel --wheel-dir /wheels ".[all]"

# ---- runtime stage: slim base, no compilers, fixed non-root user ----
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS runtime

ARG PYTHON_VERSION
ARG DEBIAN_RELEASE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="receiver" \
      org.opencontainers.image.description="Verified, durable receiver for Huawei Cloud MetaStudio live-stream callbacks" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE}"

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
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "receiver[all]==${VERSION}" \
    && receiver --help > /dev/null

WORKDIR /var/lib/receiver
VOLUME ["/var/lib/receiver"]
USER 10001:10001
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/livez', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["receiver"]
CMD ["serve", "--config", "/etc/receiver/receiver.toml"]
