# Production image: gunicorn serving authz-service. Build: docker build -t authz-service .
# Run:  docker run -e AUTHZ_DATABASE_URL=postgresql+psycopg://user:pass@db/authz -p 8000:8000 authz-service
FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY authz_service ./authz_service
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --upgrade pip && /opt/venv/bin/pip install .

FROM python:3.12-slim
RUN useradd --system --uid 10001 --home /app authz
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY model.conf ./model.conf
COPY policies ./policies
COPY seed ./seed
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    AUTHZ_MODEL_PATH=/app/model.conf \
    AUTHZ_POLICIES_DIR=/app/policies \
    AUTHZ_SEED_DIR=/app/seed \
    AUTHZ_DATABASE_URL=sqlite:////app/var/authz.sqlite3
RUN mkdir -p /app/var && chown authz /app/var
USER authz
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
# Schema and catalog first (idempotent), then the server on every interface of the container.
CMD ["sh", "-c", "authz-service init-db && exec authz-service serve --host 0.0.0.0 --port 8000 --workers ${WORKERS:-2}"]
