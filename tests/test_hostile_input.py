"""Hostile input (issue 13.1): a record no database or parser would take is quarantined with its
file, position and field, and every valid record of every file of the same command is stored."""

from __future__ import annotations

import codecs
import json

import pytest
from typer.testing import CliRunner

from miner import repository
from miner.cli import app
from miner.ingest import IngestResult, ingest_file, ingest_files, to_interview
from miner.store import store_ingest
from test_ingest import GOOD, jsonl_line, variant


def with_raw_field(record: dict, raw_json: bytes) -> bytes:
    """The record's JSON with an extra key `x` whose value is the raw JSON text given (no re-encoding)."""
    return json.dumps(record).encode()[:-1] + b', "x": ' + raw_json + b"}"


HOSTILE = {
    "nan": (with_raw_field(GOOD, b"NaN"), "field $.x: NaN is not valid JSON"),
    "infinity": (with_raw_field(GOOD, b"Infinity"), "field $.x: Infinity is not valid JSON"),
    "minus-infinity": (with_raw_field(GOOD, b"[1, -Infinity]"), "field $.x[1]: -Infinity is not valid JSON"),
    "float-overflow": (with_raw_field(GOOD, b'{"y": 1e999}'), "field $.x.y: number 1e999 is out of range"),
    "deep-arrays": (with_raw_field(GOOD, b"[" * 1000 + b"]" * 1000), "field $.x[0][0][0]"),
    "deep-objects": (with_raw_field(GOOD, b'{"a": ' * 1000 + b"1" + b"}" * 1000), "field $.x.a.a.a"),
    "nested-past-limit": (with_raw_field(GOOD, b"[" * 100 + b"]" * 100), "nested deeper than 64 levels"),
    "huge-integer": (with_raw_field(GOOD, b"9" * 5000), "field $.x: an integer of 5000 digits, over the limit"),
    "long-sessionModel": (json.dumps(variant(sessionModel="m" * 5000)).encode(),
                          "field $.sessionModel: 5000 characters, over the limit of 256"),
    "long-interviewModel": (json.dumps(variant(interviewModel="i" * 3000)).encode(),
                            "field $.interviewModel: 3000 characters, over the limit of 256"),
    "long-id": (json.dumps(variant(id="k" * 4000)).encode(), "field $.id: 4000 characters, over the limit of 256"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_record_is_quarantined_and_its_neighbours_stored(conn, tmp_path, case):
    line, expected = HOSTILE[case]
    path = tmp_path / f"{case}.jsonl"
    path.write_bytes(jsonl_line(variant(id="before")) + line + b"\n" + jsonl_line(variant(id="after")))
    study = f"hostile-{case}"
    summary = store_ingest(conn, study, ingest_files([path], study, max_record_bytes=1_000_000))
    assert (summary.stored, summary.quarantined) == (2, 1)
    assert {i.external_id for i in repository.load_interviews(conn, study)} == {"before", "after"}
    [row] = repository.load_quarantine(conn, study)
    assert (row["source_file"], row["source_position"]) == (str(path), 2)
    assert row["error"].startswith("record 2: ") and expected in row["error"], row["error"]
    assert len(row["error"]) < 400  # a 5 KB value is not repeated in the message


@pytest.mark.parametrize("case", ["nan", "deep-arrays", "huge-integer", "long-sessionModel"])
def test_hostile_item_of_a_json_array_costs_only_itself(tmp_path, case):
    line, expected = HOSTILE[case]
    path = tmp_path / "array.json"
    path.write_bytes(b"[" + json.dumps(variant(id="a")).encode() + b",\n" + line + b",\n"
                     + json.dumps(variant(id="c")).encode() + b"]")
    result = ingest_file(path, "s", 1_000_000)
    assert [i.external_id for i in result.interviews] == ["a", "c"]
    [rejected] = result.rejected
    assert rejected.source_position == 2 and expected in rejected.error


def test_json_array_with_a_syntax_error_keeps_the_items_before_it(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("[" + json.dumps(variant(id="a")) + ", " + json.dumps(variant(id="b")) + ", {oops ]")
    result = ingest_file(path, "s", 1_000_000)
    assert [i.external_id for i in result.interviews] == ["a", "b"]
    assert result.rejected[0].source_position == 3 and "invalid JSON" in result.rejected[0].error


def test_one_command_over_several_files_stores_every_valid_record_and_prints_json(miner_env, conn, tmp_path):
    logs = tmp_path / "logs"
    (logs / "nested").mkdir(parents=True)
    (logs / "a.jsonl").write_bytes(b"".join(HOSTILE[c][0] + b"\n" for c in ("nan", "deep-arrays"))
                                   + jsonl_line(variant(id="a1")))
    (logs / "nested" / "b.jsonl").write_bytes(jsonl_line(variant(id="b1")) + HOSTILE["huge-integer"][0] + b"\n"
                                              + HOSTILE["long-sessionModel"][0] + b"\n" + jsonl_line(variant(id="b2")))
    (logs / "c.json").write_bytes(b"[" + json.dumps(variant(id="c1")).encode() + b"," + HOSTILE["long-id"][0] + b"]")
    result = CliRunner().invoke(app, ["ingest", str(logs), "--study", "hostile-cli", "--json"], env=miner_env,
                                catch_exceptions=False)
    assert json.loads(result.stdout) == {"stored": 4, "duplicates": 0, "quarantined": 5}
    assert result.exit_code == 1  # something was quarantined
    assert {i.external_id for i in repository.load_interviews(conn, "hostile-cli")} == {"a1", "b1", "b2", "c1"}
    where = {(r["source_file"].removeprefix(str(logs) + "/"), r["source_position"])
             for r in repository.load_quarantine(conn, "hostile-cli")}
    assert where == {("a.jsonl", 1), ("a.jsonl", 2), ("nested/b.jsonl", 2), ("nested/b.jsonl", 3), ("c.json", 2)}


@pytest.mark.parametrize("bom", [codecs.BOM_UTF8, codecs.BOM_UTF16_LE], ids=["utf-8", "utf-16"])
def test_byte_order_mark_loses_no_record(tmp_path, bom):
    def encoded(text: str) -> bytes:
        return bom + text.encode("utf-16-le" if bom == codecs.BOM_UTF16_LE else "utf-8")

    (tmp_path / "bom.jsonl").write_bytes(encoded(json.dumps(variant(id="first")) + "\n"
                                                 + json.dumps(variant(id="second")) + "\n"))
    (tmp_path / "bom.json").write_bytes(encoded(json.dumps([variant(id="x1"), variant(id="x2")])))
    (tmp_path / "one.json").write_bytes(encoded(json.dumps(variant(id="solo"))))
    result = ingest_files([tmp_path], "s", 1_000_000)
    assert not result.rejected, result.rejected
    assert sorted(i.external_id for i in result.interviews) == ["first", "second", "solo", "x1", "x2"]


def test_extension_case_is_ignored_and_skipped_files_are_named(miner_env, conn, tmp_path):
    (tmp_path / "UPPER.JSON").write_text(json.dumps(variant(id="upper")))
    (tmp_path / "Mixed.JsonL").write_bytes(jsonl_line(variant(id="mixed")))
    (tmp_path / "stream.ndjson").write_bytes(jsonl_line(variant(id="nd")))
    (tmp_path / "notes.txt").write_text("not a log")
    result = CliRunner().invoke(app, ["ingest", str(tmp_path), "--study", "extension-case", "--json"],
                                env=miner_env, catch_exceptions=False)
    assert json.loads(result.stdout) == {"stored": 3, "duplicates": 0, "quarantined": 0}
    assert "skipped 1 files that are hidden or not .json/.jsonl/.ndjson" in result.stderr and "notes.txt" in result.stderr
    assert {i.external_id for i in repository.load_interviews(conn, "extension-case")} == {"upper", "mixed", "nd"}


def test_rich_markup_in_values_and_file_names_is_printed_as_text(miner_env, tmp_path):
    path = tmp_path / "[red]odd[bold].jsonl"
    path.write_bytes(jsonl_line(variant(id="ok")) + jsonl_line(variant(sessionModel=["[/bold]"]))
                     + jsonl_line(variant(id="[/]", interview=[{"role": "user", "content": "[bold]x[/italic]"}])))
    result = CliRunner().invoke(app, ["ingest", str(path), "--study", "markup", "--json"], env=miner_env)
    assert json.loads(result.stdout)["quarantined"] == 1
    human = CliRunner().invoke(app, ["ingest", str(path), "--study", "markup"], env=miner_env,
                               catch_exceptions=False)
    assert human.exit_code == 1
    assert "[red]odd[bold].jsonl: record 2: field $.sessionModel: ['[/bold]'] is not of type 'string'" in human.stdout
    assert "stored 0, duplicates 2, quarantined 1" in human.stdout


def test_records_the_database_refuses_are_quarantined_one_by_one(conn, tmp_path):
    """The store's own net: an Interview built by hand (not through ingest) that PostgreSQL refuses."""
    good = [to_interview(variant(id=f"g{n}"), "refused", "hand.jsonl", n) for n in (1, 3)]
    bad = to_interview(variant(id="nan"), "refused", "hand.jsonl", 2)
    bad.record["score"] = float("nan")  # jsonb has no NaN
    summary = store_ingest(conn, "refused", IngestResult((good[0], bad, good[1]), ()))
    assert (summary.stored, summary.duplicates, summary.quarantined) == (2, 0, 1)
    assert {i.external_id for i in repository.load_interviews(conn, "refused")} == {"g1", "g3"}
    [row] = repository.load_quarantine(conn, "refused")
    assert row["source_position"] == 2 and "the database refused it" in row["error"]
