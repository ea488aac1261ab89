# One image for api and workers. The GPU worker adds torch when the detection stage lands.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY server ./server
COPY worker ./worker
COPY migrations ./migrations
RUN pip install -c constraints.txt -e '.[ops]' \
 && useradd --system --uid 10001 credence && mkdir -p /data && chown credence /data
USER credence
ENV CREDENCE_DATA_DIR=/data
EXPOSE 8080
CMD ["gunicorn", "--bind", "0.0.0.0:8080", "--workers", "4", "--threads", "4", "server.wsgi:app"]
