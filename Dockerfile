# Router image: small, non-root, config baked in (docker-compose.yml mounts the live
# config over it so edits need only a restart).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# README.md* : the glob keeps the build working before the README exists.
COPY pyproject.toml README.md* ./
COPY router ./router
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin router

COPY config ./config
COPY policies ./policies

USER router
EXPOSE 8080

HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3)"]

CMD ["router", "serve", "--config", "/app/config/router.yaml", "--host", "0.0.0.0", "--port", "8080"]
