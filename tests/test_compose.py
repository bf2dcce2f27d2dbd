"""compose.yaml is a valid Compose file with the services the service needs."""

from __future__ import annotations

import shutil
import subprocess
import time
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
    assert "postgresql://" in services["worker"]["environment"]["MINER_DATABASE_URL"]


def test_worker_scales_to_several_containers():
    """`docker compose up --scale worker=N`: nothing in the worker may be unique to one container."""
    worker = yaml.safe_load(COMPOSE.read_text())["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker
    command = " ".join(worker["command"])
    assert "--hostname" in command and "%h" in command  # one Celery node name per container
    assert {"OMP_NUM_THREADS", "MINER_DATABASE_URL", "MINER_BROKER_URL"} <= worker["environment"].keys()


def test_compose_config_with_scaled_workers_validates():
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (.ci/run installs Debian's package)")
    env = {"PATH": "/usr/bin:/bin", "MINER_WORKER_CONCURRENCY": "1", "MINER_WORKER_THREADS": "2"}
    result = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    worker = yaml.safe_load(result.stdout)["services"]["worker"]
    assert worker["environment"]["OMP_NUM_THREADS"] == "2" and "1" in worker["command"]


def test_worker_on_another_host_takes_the_urls_and_queue_from_the_shell():
    """README's other-host command sets MINER_DATABASE_URL / MINER_BROKER_URL (and MINER_QUEUE) in the
    shell: compose must hand them to the worker, not its own postgres/redis service names."""
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (.ci/run installs Debian's package)")
    env = {"PATH": "/usr/bin:/bin", "MINER_DATABASE_URL": "postgresql://miner:miner@db-host:5432/miner",
           "MINER_BROKER_URL": "redis://db-host:6379/0", "MINER_QUEUE": "pilot"}
    result = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for name in ("worker", "beat", "cli"):
        environment = services[name]["environment"]
        assert environment["MINER_DATABASE_URL"] == env["MINER_DATABASE_URL"]
        assert environment["MINER_BROKER_URL"] == env["MINER_BROKER_URL"]
        assert environment["MINER_QUEUE"] == "pilot"
    bare = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"})
    worker = yaml.safe_load(bare.stdout)["services"]["worker"]["environment"]
    assert worker["MINER_DATABASE_URL"] == "postgresql://miner:miner@postgres:5432/miner"
    assert worker["MINER_BROKER_URL"] == "redis://:miner@redis:6379/0" and worker["MINER_QUEUE"] == "miner"


def test_every_setting_reaches_the_containers_from_the_shell():
    """README's settings table is the operator's interface in Compose too: each MINER_* set in the shell
    (or .env) reaches the worker, beat and cli; unset, it is empty, which miner reads as its default."""
    from miner.settings import Settings

    services = yaml.safe_load(COMPOSE.read_text())["services"]
    wanted = {f"MINER_{name.upper()}" for name in Settings.model_fields} - {"MINER_HOME"}
    for name in ("worker", "beat", "cli", "migrate"):
        environment = services[name]["environment"]
        assert wanted <= environment.keys(), (name, sorted(wanted - environment.keys()))
        for variable in wanted:
            assert f"${{{variable}:-" in environment[variable], (name, variable)


def test_postgres_and_redis_are_reachable_from_workers_on_other_hosts():
    """README: a worker on another host runs against this host's Postgres and Redis (5432 and 6379)."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert "5432:5432" in services["postgres"]["ports"]
    assert "6379:6379" in services["redis"].get("ports", [])


def test_redis_asks_for_the_password_the_workers_default_url_carries(tmp_path):
    """Redis is open to the workers' hosts (6379), so it takes a password, as Postgres does: the redis
    service's own command, run here with a real redis-server, refuses a client without it and takes
    the workers' default broker URL; REDIS_PASSWORD from the shell or .env replaces it."""
    import redis
    from test_faults import free_port, redis_server_binary

    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (.ci/run installs Debian's package)")
    result = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config"], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "REDIS_PASSWORD": "s3cret"})
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    service = services["redis"]
    assert service["environment"]["REDIS_PASSWORD"] == "s3cret"
    shell, flag, script = service["command"]
    assert (shell, flag) == ("sh", "-c") and "--requirepass" in script
    script = script.replace("$$", "$").replace("redis-server", f"{redis_server_binary()} --port {{port}}", 1)
    port = free_port()
    server = subprocess.Popen([shell, flag, script.format(port=port)], cwd=tmp_path,
                              env={"PATH": "/usr/bin:/bin", "REDIS_PASSWORD": "s3cret"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert redis.Redis(port=port, password="s3cret").ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "the redis service's command did not start a server"
                time.sleep(0.2)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
    finally:
        server.terminate()
        server.wait(timeout=30)
    bare = yaml.safe_load(subprocess.run(["docker-compose", "-f", str(COMPOSE), "config"], capture_output=True,
                                         text=True, env={"PATH": "/usr/bin:/bin"}).stdout)["services"]
    url = redis.connection.parse_url(bare["worker"]["environment"]["MINER_BROKER_URL"])
    assert url["password"] == bare["redis"]["environment"]["REDIS_PASSWORD"] == "miner"
