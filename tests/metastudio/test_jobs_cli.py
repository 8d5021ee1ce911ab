"""``jobs list``: flags reach the API, output is redacted JSON or a table."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import orjson
import pytest
from wcwidth import wcwidth

from receiver.metastudio.cli import print_table, register

from .fake_api import AK, PROJECT_ID, SK, Fault, RunningApi, make_job


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="receiver")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.fixture
def config(api: RunningApi, tmp_path: Path) -> Path:
    path = tmp_path / "receiver.toml"
    path.write_text(
        "[metastudio]\n"
        f'endpoint = "{api.url}"\n'
        f'project_id = "{PROJECT_ID}"\n'
        f'ak = "{AK}"\n'
        f'sk = "{SK}"\n'
        "rate_limit_per_second = 1000\n"
        "max_retries = 0\n",
        encoding="utf-8",
    )
    return path


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    code: int = args.func(args)
    return code


def test_every_flag_reaches_the_api_and_json_is_redacted(
    api: RunningApi, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api.state.jobs = [make_job(i) for i in range(4)]
    code = _run(
        [
            "jobs",
            "list",
            "-c",
            str(config),
            "--offset",
            "1",
            "--limit",
            "2",
            "--state",
            "WAITING,PROCESSING",
            "--sort-key",
            "create_time",
            "--sort-dir",
            "asc",
            "--create-since",
            "2024-05-01T00:00:00Z",
            "--create-until",
            "2024-06-01T00:00:00Z",
            "--room-name",
            "直播间",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert api.state.query_of() == {
        "offset": "1",
        "limit": "2",
        "state": "WAITING,PROCESSING",
        "sort_key": "create_time",
        "sort_dir": "asc",
        "create_since": "2024-05-01T00:00:00Z",
        "create_until": "2024-06-01T00:00:00Z",
        "room_name": "直播间",
    }
    document = orjson.loads(out)
    assert document["count"] == 4
    assert [job["job_id"] for job in document["smart_live_jobs"]] == ["job-0001", "job-0002"]
    assert document["smart_live_jobs"][0]["future_field"] == {"nested": True}
    for secret in ("callback-key-secret", "rtc-sig-secret", "url-secret"):
        assert secret not in out


def test_all_pages_of_one_room_as_a_table(
    api: RunningApi, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api.state.jobs = [make_job(i, room_id="room-9") for i in range(7)] + [make_job(99)]
    code = _run(
        [
            "jobs",
            "list",
            "--config",
            str(config),
            "--room-id",
            "room-9",
            "--all",
            "--limit",
            "3",
            "--table",
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0].split() == [
        "job_id",
        "room_id",
        "room_name",
        "state",
        "create_time",
        "duration",
    ]
    assert [line.split()[0] for line in lines[1:-1]] == [f"job-{i:04d}" for i in range(7)]
    assert lines[-1] == "7 shown, 7 in total"
    assert len(api.state.seen) == 3
    assert {s.path for s in api.state.seen} == {
        f"/v1/{PROJECT_ID}/smart-live-rooms/room-9/smart-live-jobs"
    }


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--limit", "0"], "limit:"),
        (["--state", "RUNNING"], "state:"),
        (["--create-since", "yesterday"], "create_since:"),
        (["--room-id", "r", "--room-name", "n"], "room_name:"),
    ],
)
def test_bad_flags_exit_2_naming_the_parameter(
    api: RunningApi,
    config: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    assert _run(["jobs", "list", "-c", str(config), *flags]) == 2
    assert message in capsys.readouterr().err
    assert api.state.seen == []


def test_api_errors_exit_1(
    api: RunningApi, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api.state.faults.append(Fault(429, {"error_code": "APIGW.0308", "error_msg": "throttled"}))
    assert _run(["jobs", "list", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert "APIGW.0308" in err
    assert SK not in err


def test_missing_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["jobs", "list", "-c", str(tmp_path / "absent.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_sort_flags_are_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["jobs", "list", "--sort-dir", "up"])
    assert "--sort-dir" in capsys.readouterr().err


def _columns_at(line: str) -> list[int]:
    """The terminal column where each cell of ``line`` starts."""
    starts, column, previous = [], 0, " "
    for char in line:
        if char != " " and previous == " ":
            starts.append(column)
        column += max(wcwidth(char), 0)
        previous = char
    return starts


def test_table_columns_line_up_with_wide_room_names() -> None:
    jobs = [
        {"job_id": "job-1", "room_id": "r1", "room_name": "直播间一号", "state": "PROCESSING"},
        {"job_id": "job-2", "room_id": "r2", "room_name": "ascii-room", "state": "SUCCEED"},
        {"job_id": "job-3", "room_id": "r3", "room_name": "デジタル配信", "state": "FAILED"},
        {"job_id": "job-4", "room_id": "r4", "room_name": "e\u0301clair", "state": "WAITING"},
    ]
    out = io.StringIO()
    print_table(4, jobs, out)
    lines = out.getvalue().splitlines()[:-1]
    assert len({tuple(_columns_at(line)) for line in lines}) == 1, "\n".join(lines)


def test_table_cells_cannot_move_the_cursor() -> None:
    out = io.StringIO()
    print_table(1, [{"job_id": "j", "room_name": "a\x1b[2Jb\nc"}], out)
    assert "\x1b" not in out.getvalue()
    assert out.getvalue().count("\n") == 3
