"""Ingest: every kind of bad record is quarantined with a reason; good records survive beside it."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from miner import repository
from miner.cli import app
from miner.ingest import ingest_file, ingest_files, validate_record, InputSchemaError
from miner.store import store_ingest

GOOD = {
    "id": "ext-1",
    "sessionModel": "model-a",
    "session": [{"role": "user", "content": "Write a haiku"}, {"role": "assistant", "content": [{"text": "Leaves fall"}]}],
    "sessionStart": "2026-01-01T10:00:00Z",
    "sessionEnd": "2026-01-01T10:05:00Z",
    "interviewModel": "interviewer",
    "interview": [
        {"role": "assistant", "content": "Did it understand you?"},
        {"role": "user", "content": "Yes, it got exactly what I wanted."},
    ],
    "interviewStart": "2026-01-01T10:06:00Z",
    "interviewEnd": "2026-01-01T10:09:00Z",
}


def variant(**changes) -> dict:
    record = json.loads(json.dumps(GOOD))
    for key, value in changes.items():
        if value is ...:
            del record[key]
        else:
            record[key] = value
    return record


def jsonl_line(record: dict) -> bytes:
    return json.dumps(record).encode() + b"\n"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"sessionModel": "a", "session": [\n', "invalid JSON"),
        (jsonl_line(variant(sessionModel=...)), "sessionModel: missing"),
        (jsonl_line(variant(interviewModel=...)), "interviewModel: missing"),
        (jsonl_line(variant(sessionModel=42)), "$.sessionModel"),
        (jsonl_line(variant(session="not a list")), "$.session"),
        (jsonl_line(variant(interview=[])), "$.interview: is empty"),
        (jsonl_line(variant(interview=[{"role": "assistant", "content": "Hello?"}])), "$.interview: holds no user answer"),
        (jsonl_line(variant(interview=[{"role": "user", "content": "   "}])), "every user answer is empty"),
        (jsonl_line(variant(interview=[{"role": "robot", "content": "hi"}, {"role": "user", "content": "ok"}])), "$.interview[0].role"),
        (jsonl_line(variant(interview=[{"role": "user", "content": 5}])), "$.interview[0].content"),
        (jsonl_line(variant(sessionStart="yesterday-ish")), "$.sessionStart"),
        (b'{"sessionModel": "caf\xe9", "session": [], "interviewModel": "i", "interview": [{"role": "user", "content": "ok"}]}\n',
         "$.sessionModel: undecodable bytes"),
        (b'[1, 2, 3]\n', "expected a JSON object"),
    ],
    ids=["bad-json", "missing-sessionModel", "missing-interviewModel", "mistyped-sessionModel", "mistyped-session",
         "empty-interview", "no-user-answer", "blank-answers", "bad-role", "mistyped-content", "bad-timestamp",
         "undecodable-bytes", "not-an-object"],
)
def test_bad_record_is_quarantined_beside_good_ones(tmp_path, line, expected):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(jsonl_line(variant(id="before")) + line + jsonl_line(variant(id="after")))
    result = ingest_file(path, "s", max_record_bytes=100_000)
    assert [i.external_id for i in result.interviews] == ["before", "after"]
    assert len(result.rejected) == 1
    rejected = result.rejected[0]
    assert rejected.source_position == 2
    assert expected in rejected.error, rejected.error
    assert rejected.error.startswith("record 2:")


def test_oversized_record_is_quarantined(tmp_path):
    path = tmp_path / "big.jsonl"
    huge = variant(interview=[{"role": "assistant", "content": "Q?"}, {"role": "user", "content": "x" * 5000}])
    path.write_bytes(jsonl_line(GOOD) + jsonl_line(huge))
    result = ingest_file(path, "s", max_record_bytes=2000)
    assert len(result.interviews) == 1
    assert "over the limit of 2000" in result.rejected[0].error


def test_json_array_and_single_object_files(tmp_path):
    (tmp_path / "array.json").write_text(json.dumps([GOOD, variant(id="x", sessionModel=7)]))
    (tmp_path / "one.json").write_text(json.dumps(variant(id="solo")))
    array = ingest_file(tmp_path / "array.json", "s", 100_000)
    assert len(array.interviews) == 1 and array.rejected[0].source_position == 2
    assert "$.sessionModel" in array.rejected[0].error
    assert ingest_file(tmp_path / "one.json", "s", 100_000).interviews[0].external_id == "solo"


def test_a_json_array_in_a_jsonl_file_is_read_as_an_array(tmp_path):
    records = [variant(id="a1"), variant(id="a2", sessionModel=7), variant(id="a3")]
    (tmp_path / "pretty.jsonl").write_text(json.dumps(records, indent=2))
    (tmp_path / "one-line.ndjson").write_text(json.dumps(records) + "\n")
    for name in ("pretty.jsonl", "one-line.ndjson"):
        result = ingest_file(tmp_path / name, "s", 100_000)
        assert [i.external_id for i in result.interviews] == ["a1", "a3"], name
        assert [(r.source_position, "$.sessionModel" in r.error) for r in result.rejected] == [(2, True)], name


def test_jsonl_in_a_json_file_is_read_line_by_line(tmp_path):
    path = tmp_path / "export.json"
    path.write_bytes(jsonl_line(variant(id="l1")) + b"{oops\n" + jsonl_line(variant(id="l3")))
    result = ingest_file(path, "s", 100_000)
    assert [i.external_id for i in result.interviews] == ["l1", "l3"]
    assert [r.source_position for r in result.rejected] == [2] and "invalid JSON" in result.rejected[0].error


def test_a_pretty_printed_object_in_a_jsonl_file_is_one_record(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(variant(id="pretty"), indent=2) + "\n")
    result = ingest_file(path, "s", 100_000)
    assert [i.external_id for i in result.interviews] == ["pretty"] and not result.rejected


@pytest.mark.parametrize("name", ["subset.jsonl", "subset.json"])
def test_jq_output_pretty_printed_records_one_after_another_is_read_record_by_record(tmp_path, name):
    # `jq 'select(...)' logs.jsonl > subset.jsonl` prints each record pretty-printed, opening at column 0.
    broken = json.dumps(variant(id="j2"), indent=2).replace('"j2"', '"j2" oops')
    path = tmp_path / name
    path.write_text("\n".join([json.dumps(variant(id="j1"), indent=2), broken, json.dumps(variant(id="j3"), indent=2),
                               json.dumps(variant(id="j4", sessionModel=7), indent=2)]) + "\n")
    result = ingest_file(path, "s", 100_000)
    assert [i.external_id for i in result.interviews] == ["j1", "j3"]
    assert [r.source_position for r in result.rejected] == [2, 4]
    assert "invalid JSON" in result.rejected[0].error and "$.sessionModel" in result.rejected[1].error


def test_a_broken_first_line_costs_only_itself(tmp_path):
    path = tmp_path / "study.jsonl"
    path.write_bytes(b'{"sessionModel": oops\n' + jsonl_line(variant(id="f2")) + jsonl_line(variant(id="f3")))
    result = ingest_file(path, "s", 100_000)
    assert [i.external_id for i in result.interviews] == ["f2", "f3"]
    assert [r.source_position for r in result.rejected] == [1] and "invalid JSON" in result.rejected[0].error


def test_byte_order_marks_of_concatenated_files_are_dropped_on_every_line(tmp_path):
    path = tmp_path / "all.jsonl"  # `cat a.jsonl b.jsonl > all.jsonl` of files a Windows editor saved
    path.write_bytes(b"".join(b"\xef\xbb\xbf" + jsonl_line(variant(id=f"b{i}")).replace(b"\n", b"\r\n") for i in range(3)))
    result = ingest_file(path, "s", 100_000)
    assert [i.external_id for i in result.interviews] == ["b0", "b1", "b2"] and not result.rejected


def test_hidden_files_in_a_directory_are_skipped_not_read(tmp_path):
    logs = tmp_path / "logs"
    (logs / ".ipynb_checkpoints").mkdir(parents=True)
    (logs / "day1.jsonl").write_bytes(jsonl_line(GOOD))
    (logs / ".ipynb_checkpoints" / "day1-checkpoint.jsonl").write_bytes(jsonl_line(variant(id="stale")))
    (logs / "._day1.jsonl").write_bytes(b"\x00\x05\x16\x07Mac OS X resource fork")
    result = ingest_files([logs], "s", 100_000)
    assert [i.external_id for i in result.interviews] == ["ext-1"] and not result.rejected
    assert sorted(result.skipped) == sorted([str(logs / ".ipynb_checkpoints" / "day1-checkpoint.jsonl"),
                                             str(logs / "._day1.jsonl")])
    named = ingest_files([logs / ".ipynb_checkpoints" / "day1-checkpoint.jsonl"], "s", 100_000)
    assert [i.external_id for i in named.interviews] == ["stale"]  # named on its own: read


def test_content_parts_and_extra_keys_are_accepted():
    validate_record(variant(extra_key={"anything": 1}))
    with pytest.raises(InputSchemaError, match=r"\$\.session\[1\]\.content"):
        validate_record(variant(session=[{"role": "user", "content": "a"}, {"role": "assistant", "content": [{"txt": "b"}]}]))


def test_reingest_stores_nothing_twice(conn, tmp_path):
    path = tmp_path / "study.jsonl"
    path.write_bytes(b"".join(jsonl_line(variant(id=f"r{i}")) for i in range(5)) + b"{oops\n")
    first = store_ingest(conn, "reingest", ingest_file(path, "reingest", 100_000))
    second = store_ingest(conn, "reingest", ingest_file(path, "reingest", 100_000))
    assert (first.stored, first.duplicates, first.quarantined) == (5, 0, 1)
    assert (second.stored, second.duplicates, second.quarantined) == (0, 5, 1)
    assert repository.count_interviews(conn, "reingest") == 5
    assert len(repository.load_quarantine(conn, "reingest")) == 1  # the same bad line is not queued twice


def test_same_record_in_two_studies_is_stored_in_each(conn, tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_bytes(jsonl_line(GOOD))
    assert store_ingest(conn, "study-a", ingest_file(path, "study-a", 100_000)).stored == 1
    assert store_ingest(conn, "study-b", ingest_file(path, "study-b", 100_000)).stored == 1


def run_cli(miner_env, *args):
    return CliRunner().invoke(app, list(args), env=miner_env, catch_exceptions=False)


@pytest.mark.parametrize("study", ["", "   "])
def test_cli_ingest_refuses_a_blank_study_name(miner_env, conn, tmp_path, study):
    path = tmp_path / "one.jsonl"  # `--study "$STUDY"` with STUDY unset
    path.write_bytes(jsonl_line(variant(id="blank-study")))
    result = CliRunner().invoke(app, ["ingest", str(path), "--study", study], env=miner_env)
    assert result.exit_code == 2 and "error:" in result.output and "--study" in result.output, result.output
    assert repository.count_interviews(conn, study) == 0


def test_cli_ingest_summary_json_and_exit_codes(miner_env, database_url, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "good.jsonl").write_bytes(jsonl_line(variant(id="g1")) + jsonl_line(variant(id="g2")))
    (logs / "bad.jsonl").write_bytes(jsonl_line(variant(id="g3")) + b"not json\n")

    result = run_cli(miner_env, "ingest", str(logs), "--study", "cli-study", "--json")
    assert json.loads(result.stdout) == {"stored": 3, "duplicates": 0, "quarantined": 1}
    assert result.exit_code == 1  # something was quarantined

    again = run_cli(miner_env, "ingest", str(logs / "good.jsonl"), "--study", "cli-study", "--json")
    assert json.loads(again.stdout) == {"stored": 0, "duplicates": 2, "quarantined": 0}
    assert again.exit_code == 0  # only duplicates is fine

    (tmp_path / "empty.jsonl").write_text("\n\n")
    empty = run_cli(miner_env, "ingest", str(tmp_path / "empty.jsonl"), "--study", "cli-study", "--json")
    assert json.loads(empty.stdout) == {"stored": 0, "duplicates": 0, "quarantined": 0}
    assert empty.exit_code == 1  # no record at all

    human = run_cli(miner_env, "ingest", str(logs / "bad.jsonl"), "--study", "cli-study")
    assert "bad.jsonl: record 2: invalid JSON" in human.stdout
    assert "stored 0, duplicates 1, quarantined 1" in human.stdout
