"""`miner demo` and `miner sample` as a user runs them, with nothing configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from miner.cli import app


def test_sample_command_writes_a_valid_study(tmp_path):
    out = tmp_path / "s.jsonl"
    result = CliRunner().invoke(app, ["sample", "--out", str(out), "--interviews", "25", "--seed", "7"])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert len(lines) == 25
    again = tmp_path / "t.jsonl"
    CliRunner().invoke(app, ["sample", "--out", str(again), "--interviews", "25", "--seed", "7"])
    assert again.read_text() == out.read_text()  # same seed, same study
    from miner.ingest import ingest_file

    assert len(ingest_file(out, "s", 1_000_000).interviews) == 25


def test_demo_runs_on_embedded_servers_with_nothing_configured(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINER_")}
    result = subprocess.run(
        [sys.executable, "-m", "miner.cli", "demo", "--interviews", "90"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Themes by model" in result.stdout
    # Each theme says whether people praise or complain (issue 12.3): the table has a stance column
    # and the demo's planted opinions come back with both stances.
    assert "stance" in result.stdout
    assert "negative" in result.stdout and "positive" in result.stdout
    for model in ("aurora-7b", "borealis-70b", "cirrus-mini"):
        assert model in result.stdout
    assert "theme_by_model" in result.stdout and "miner db psql" in result.stdout
    assert (tmp_path / ".miner" / "postgres" / "PG_VERSION").exists()
    assert "succeeded" in (tmp_path / ".miner" / "worker.log").read_text()

    # The embedded database still answers SQL after the demo, through `miner db psql`.
    query = subprocess.run(
        [sys.executable, "-m", "miner.cli", "db", "psql", "-At", "-c",
         "SELECT count(DISTINCT session_model) FROM theme_by_model WHERE study = 'demo'"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert query.returncode == 0, query.stderr
    assert query.stdout.strip() == "3"
