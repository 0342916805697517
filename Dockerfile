# toolmux: one MCP endpoint (and an OpenAI-compatible /v1) over the built-in domain servers.
#   docker build -t toolmux .
#   docker run -p 4000:4000 -v toolmux-data:/data toolmux
# The master key is generated into the data volume on first start (docker logs shows it once).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY aggregator ./aggregator
COPY servers ./servers
COPY clients ./clients
COPY schemas ./schemas
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[all]'

FROM python:3.11-slim-bookworm
# System packages the domains need: chromium (browser), ffmpeg + espeak-ng (speech),
# bubblewrap (workspace sandbox; isolates only when the container may create user namespaces).
# Not pinned: the base image's Debian release fixes the versions, and security updates must apply.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium ffmpeg espeak-ng bubblewrap \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
# Pinned by the wheelhouse: --no-index installs exactly the wheels built above.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --no-index --find-links /wheels 'toolmux[all]' && rm -rf /wheels
RUN useradd --system --uid 10001 --create-home --home-dir /home/toolmux toolmux \
    && mkdir /data && chown toolmux:toolmux /data
USER 10001
WORKDIR /home/toolmux
ENV TOOLMUX_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 4000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:4000/health/readiness', timeout=4).status != 200)"]
# 0.0.0.0: the port is published by Docker; the API key is required on every request.
CMD ["toolmux", "serve", "--host", "0.0.0.0", "--port", "4000"]
