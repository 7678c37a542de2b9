FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends libjpeg62-turbo zlib1g libglib2.0-0 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY moderation moderation
COPY labeling labeling
COPY ml ml
COPY bench bench
RUN pip install --no-cache-dir -e .
COPY . .
EXPOSE 8000
CMD ["gunicorn", "moderation.wsgi:application", "--bind", "0.0.0.0:8000"]
