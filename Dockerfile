# syntax=docker/dockerfile:1
# Stage 1: build a wheel and install it, with its dependencies, into a virtual environment.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY prompts ./prompts
# prompts/ is package data of bot.prompts (pyproject.toml): the wheel carries the essay and the pack.
# asyncpg too: clusters share one PostgreSQL (deploy/compose.yaml).
RUN pip install ".[postgres]"

# Stage 2: the runtime image: no compiler, no sources, a non-root user, data on a volume.
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
RUN useradd --create-home --uid 10001 commonground
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
RUN mkdir -p /app/data && chown commonground:commonground /app/data
USER commonground
VOLUME ["/app/data"]
# Exec form: the bot is PID 1's child-free process and receives SIGTERM directly; it closes the
# gateway and the database before exiting.
STOPSIGNAL SIGTERM
CMD ["commonground", "run"]
