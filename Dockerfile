# The gateway image: `docker build -t gateway .` (docker-compose.yml builds it too).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# pyproject.toml names README.md as the package's readme, so the build needs it; the migrations
# live in gateway/store/sql (sql/ at the top is a link to it) and ship as package data.
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip install . \
    && useradd --system --uid 10001 --user-group --home-dir /app --no-create-home gateway \
    && mkdir -p /app/data \
    && chown gateway:gateway /app/data

USER gateway

# GATEWAY_* variables configure everything (see the README); these are the image's defaults.
ENV GATEWAY_PORT=8080 \
    GATEWAY_DATA_DIR=/app/data

EXPOSE 8080

# Ready = PostgreSQL answers and, with GATEWAY_REDIS_URL, the Redis bus is connected.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GATEWAY_PORT', '8080') + '/readyz', timeout=3).status != 200)"]

# SIGTERM (docker stop) closes every WebSocket with 1001 and writes what is pending.
STOPSIGNAL SIGTERM
CMD ["gateway", "serve", "--host", "0.0.0.0"]
