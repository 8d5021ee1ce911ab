from pathlib import Path

import pytest

from receiver.cli import main
from receiver.config import AuthType, ConfigError, load_settings

GOOD = """
[server]
port = 9000
public_url = "https://cb.example.com/hook"

[auth]
type = ["MSS_A", "MSS_A_HEAD"]
keys = ["abc"]

[[sinks]]
name = "out"
type = "jsonl"
path = "out.jsonl"

[[routes]]
event_types = ["*"]
sinks = ["out"]
"""


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "receiver.toml"
    path.write_text(GOOD)
    return path


def test_file_is_loaded(good: Path) -> None:
    settings = load_settings(good)
    assert settings.server.port == 9000
    assert settings.auth.type == [AuthType.MSS_A, AuthType.MSS_A_HEAD]
    assert settings.server.callback_url == "https://cb.example.com/hook"


def test_environment_overrides_file(good: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECEIVER_SERVER__PORT", "9100")
    monkeypatch.setenv("RECEIVER_AUTH__TYPE", "MSS_A_HEAD")
    monkeypatch.setenv("RECEIVER_AUTH__KEYS", '["k1", "k2"]')
    settings = load_settings(good)
    assert settings.server.port == 9100
    assert settings.auth.type == [AuthType.MSS_A_HEAD]
    assert [k.get_secret_value() for k in settings.auth.keys] == ["k1", "k2"]


def test_config_path_from_environment(good: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECEIVER_CONFIG", str(good))
    assert load_settings().server.port == 9000


def test_embedded_defaults_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECEIVER_CONFIG", raising=False)
    settings = load_settings()
    assert settings.server.host == "127.0.0.1"
    assert settings.intake.backend == "sqlite"


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (("port = 9000", "port = 'x'"), "server.port"),
        (("port = 9000", "port = 9000\nbogus = 1"), "server.bogus"),
        (('type = ["MSS_A", "MSS_A_HEAD"]', 'type = ["FOO"]'), "auth.type"),
        (('keys = ["abc"]', "keys = []"), "auth"),
        (('sinks = ["out"]', 'sinks = ["missing"]'), "routes[0].sinks"),
        (('type = "jsonl"', 'type = "carrier-pigeon"'), "sinks.0"),
        (('keys = ["abc"]', f'keys = ["{"x" * 33}"]'), "auth.keys"),
        (
            ('public_url = "https://cb.example.com/hook"', 'public_url = "ftp://x"'),
            "server.public_url",
        ),
        (("port = 9000", "port = 9000\nmax_url_bytes = 10"), "server.max_url_bytes"),
        (("port = 9000", "port = 9000\nheader_timeout_seconds = 0"), "server.header_timeout"),
        (("port = 9000", "port = 9000\nlimit_concurrency = -1"), "server.limit_concurrency"),
    ],
)
def test_bad_keys_are_named(good: Path, edit: tuple[str, str], key: str) -> None:
    good.write_text(good.read_text().replace(*edit))
    with pytest.raises(ConfigError) as caught:
        load_settings(good)
    assert key in str(caught.value)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_malformed_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server\nport=")
    with pytest.raises(ConfigError):
        load_settings(path)


def test_check_config_command(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(good)]) == 0
    assert "config ok" in capsys.readouterr().out
    good.write_text(good.read_text().replace("port = 9000", "port = 99999"))
    assert main(["check-config", "--config", str(good)]) == 2
    assert "server.port" in capsys.readouterr().err


def test_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).parent.parent / "receiver.example.toml"
    monkeypatch.setenv("RECEIVER_AUTH__KEYS", '["example-key"]')
    assert load_settings(example).server.path


def test_check_command_reports_each_part(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good.write_text(
        good.read_text().replace('path = "out.jsonl"', f'path = "{good.parent / "out.jsonl"}"')
    )
    assert main(["check", "--config", str(good)]) == 0
    out = capsys.readouterr().out
    assert "ok   sink out (jsonl)" in out and "metastudio list call: skipped" in out


def test_check_command_fails_on_unreachable_api(
    good: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = good.read_text().replace('path = "out.jsonl"', f'path = "{good.parent / "out.jsonl"}"')
    good.write_text(
        text
        + '\n[metastudio]\nendpoint = "http://127.0.0.1:9"\nproject_id = "p"\nak = "a"\nsk = "s"\nmax_retries = 0\n'
    )
    assert main(["check", "--config", str(good)]) == 1
    assert "FAIL metastudio list call" in capsys.readouterr().out


def test_secret_urls_from_mounted_files(tmp_path: Path) -> None:
    secret = tmp_path / "redis-url"
    secret.write_text("redis://:s3cret@127.0.0.1:6379/0\n")
    hook = tmp_path / "hook"
    hook.write_text("whsec_c2VjcmV0\n")
    config = tmp_path / "c.toml"
    config.write_text(f"""
[intake]
backend = "redis"
url_file = "{secret}"
[[sinks]]
name = "r"
type = "redis"
url_file = "{secret}"
[[sinks]]
name = "h"
type = "http"
url = "http://127.0.0.1:1/hook"
secret_file = "{hook}"
[[routes]]
sinks = ["r", "h"]
""")
    settings = load_settings(config)
    assert settings.intake.url == "redis://:s3cret@127.0.0.1:6379/0"
    redis_sink, http_sink = settings.sinks
    assert redis_sink.url.get_secret_value() == "redis://:s3cret@127.0.0.1:6379/0"  # type: ignore[union-attr]
    assert http_sink.secret.get_secret_value() == "whsec_c2VjcmV0"  # type: ignore[union-attr]
    assert "s3cret" not in repr(settings)


def test_unknown_template_field_and_missing_secret_file_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[[sinks]]\nname = "n"\ntype = "nats"\nsubject = "x.{room}"\n[[routes]]\nsinks = ["n"]\n'
    )
    with pytest.raises(ConfigError, match="room"):
        load_settings(config)
    config.write_text(
        f'[[sinks]]\nname = "n"\ntype = "redis"\nurl_file = "{tmp_path}/none"\n[[routes]]\nsinks = ["n"]\n'
    )
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(config)


def test_signed_auth_requires_the_public_url(tmp_path: Path) -> None:
    path = tmp_path / "receiver.toml"
    path.write_text(GOOD.replace('public_url = "https://cb.example.com/hook"\n', ""))
    with pytest.raises(ConfigError, match=r"server.public_url is required"):
        load_settings(path)
    path.write_text(
        GOOD.replace('public_url = "https://cb.example.com/hook"\n', "").replace(
            'type = ["MSS_A", "MSS_A_HEAD"]', 'type = ["NONE"]\nallow_unauthenticated = true'
        )
    )
    assert load_settings(path).server.callback_url == "http://127.0.0.1:9000/callbacks/metastudio"


@pytest.mark.parametrize("section", ["enrichment", "reconcile"])
def test_calling_the_api_requires_a_project(tmp_path: Path, section: str) -> None:
    path = tmp_path / "receiver.toml"
    path.write_text(GOOD + f"\n[{section}]\nenabled = true\n")
    with pytest.raises(ConfigError, match=rf"project_id is required when {section}.enabled"):
        load_settings(path)
