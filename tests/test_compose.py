"""compose.yaml is a valid Compose file with the services the service needs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[1] / "compose.yaml"


def test_compose_file_validates_with_docker_compose():
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (.ci/run installs Debian's package)")
    result = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_compose_has_postgres_redis_worker_and_beat():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert {"postgres", "redis", "worker", "beat"} <= services.keys()
    assert "workers.app" in services["worker"]["command"] and "worker" in services["worker"]["command"]
    assert "beat" in services["beat"]["command"]
    assert services["worker"]["environment"]["MINER_DATABASE_URL"].startswith("postgresql://")
