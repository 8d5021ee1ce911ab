"""``receiver check-config``: what it prints about the configuration."""

from pathlib import Path

import pytest

from receiver.cli import main
from tests.helpers import write_config


def test_check_config_hides_the_url_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "tok-0123456789abcdef"
    config = write_config(
        tmp_path, 8999, auth=f'type = ["NONE"]\nurl_token_param = "t"\nkeys = ["{token}"]\n'
    )
    text = config.read_text().replace(
        'public_url = "http://127.0.0.1:8999/callbacks/metastudio"',
        f'public_url = "https://cb.example.com/hook?tenant=acme&t={token}&sign=s1g"',
    )
    config.write_text(text)
    assert main(["check-config", "--config", str(config)]) == 0
    printed = capsys.readouterr().out
    assert token not in printed and "s1g" not in printed
    assert (
        "callback https://cb.example.com/hook?tenant=acme&t=[redacted]&sign=[redacted] " in printed
    )
