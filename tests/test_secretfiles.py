"""The one secret-file reader, as each of its users sees it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from receiver.config import AuthSettings, MetaStudioSettings
from receiver.keyring import KeyRing
from receiver.metastudio.auth import AkSkAuth, auth_from_settings
from receiver.secretfiles import read_secret, read_secret_lines
from receiver.sink_settings import RedisSinkSettings

TEXT = "# rotated 2026-11\r\nfirst-secret\r\n\r\n  second-secret  \n"


def test_lines_are_stripped_and_comments_skipped(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(TEXT, newline="")
    assert read_secret_lines(path) == ["first-secret", "second-secret"]
    assert read_secret(path) == "first-secret"
    (tmp_path / "empty").write_text("\n# nothing yet\n")
    assert read_secret(tmp_path / "empty") == ""


def test_an_unreadable_file_names_the_path_not_the_content(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot read .*missing: No such file"):
        read_secret(tmp_path / "missing")
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfesecret")
    with pytest.raises(ValueError, match="not UTF-8") as caught:
        read_secret_lines(binary)
    assert "secret" not in str(caught.value).replace(str(binary), "")


def test_every_user_reads_a_file_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(TEXT, newline="")
    sink = RedisSinkSettings(name="r", type="redis", url_file=str(path))
    assert sink.url.get_secret_value() == "first-secret"
    keyring = KeyRing(AuthSettings(keys_file=path))
    assert keyring.keys == ["first-secret", "second-secret"]
    settings = MetaStudioSettings(project_id="p" * 32, ak=SecretStr("AK"), sk_file=path)
    auth = auth_from_settings(settings, None)  # type: ignore[arg-type]
    assert isinstance(auth, AkSkAuth)
    assert auth._sk.get_secret_value() == "first-secret"
