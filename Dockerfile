FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 CAREINBOX_VAR_DIR=/app/var
WORKDIR /app
COPY pyproject.toml README.md ./
COPY careinbox ./careinbox
COPY tickets ./tickets
COPY channels_social ./channels_social
COPY monitoring ./monitoring
COPY templates ./templates
COPY static ./static
COPY manage.py ./
RUN pip install --no-cache-dir . \
 && SECRET_KEY=build-only CREDENTIALS_KEYS=build-only python manage.py collectstatic --noinput \
 && useradd --create-home careinbox && mkdir -p /app/var && chown -R careinbox /app/var
USER careinbox
EXPOSE 8000
CMD ["gunicorn", "careinbox.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
