# meshload: the coordinator, the workers and the tools in one image (the Helm chart's default).
#   docker build -t meshload:0.1.0 .
#   docker run --rm meshload:0.1.0 run http://target/ --rate 100 --duration 30s
# Build stage: wheels of meshload and of every dependency, with its extras (Locust, Kubernetes,
# PostgreSQL for the history store).
FROM python:3.11-slim-bookworm AS build
# A C compiler for meshload's compiled response path (hot_path.pyx); the image has Python's headers.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[locust,k8s,postgres]"

# Run stage: the wheels installed, no compiler, no source tree; a non-root user with a fixed id (the
# chart's securityContext uses 10001). redis-server lets `meshload run` without --redis start its own.
FROM python:3.11-slim-bookworm
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 meshload \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin meshload
COPY --from=build /wheels /wheels
# Every wheel of the build stage: meshload, its dependencies and its extras' (no index: nothing else).
RUN pip install --no-cache-dir --no-index /wheels/*.whl \
    && rm -rf /wheels
ENV PYTHONUNBUFFERED=1 \
    HOME=/tmp
WORKDIR /tmp
USER 10001:10001
ENTRYPOINT ["meshload"]
CMD ["--help"]
