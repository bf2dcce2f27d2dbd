# One image for the worker, beat and the CLI.
FROM python:3.11-slim
WORKDIR /app
ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
# torch first and pinned, so nothing below pulls another build; pass
# --build-arg PIP_EXTRA_INDEX_URL=... to take a CPU-only wheel from your own index.
ARG PIP_EXTRA_INDEX_URL=
RUN pip install torch==2.13.0
COPY pyproject.toml README.md ./
COPY miner ./miner
COPY workers ./workers
COPY schemas ./schemas
RUN pip install -e .
ENTRYPOINT []
CMD ["miner", "--help"]
