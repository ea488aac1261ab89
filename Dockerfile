# One image for api and workers (the API never imports torch; the workers need it for detection).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY server ./server
COPY worker ./worker
COPY migrations ./migrations
COPY models ./models
RUN pip install -c constraints.txt -e '.[ops,detect]' \
 && pip install --no-deps -c constraints.txt celery-batches facenet-pytorch \
 && useradd --system --uid 10001 credence && mkdir -p /data && chown credence /data
USER credence
ENV CREDENCE_DATA_DIR=/data
EXPOSE 8080
CMD ["gunicorn", "--bind", "0.0.0.0:8080", "--workers", "4", "--threads", "4", "server.wsgi:app"]
