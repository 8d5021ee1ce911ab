"""NONE-mode URL tokens: the comparison tells a timing observer nothing about the tokens."""

from __future__ import annotations

import hmac

import pytest

from receiver.authentication import Authenticator
from receiver.config import AuthSettings

TOKENS = ["first-token", "second", "t" * 32]


def token_authenticator() -> Authenticator:
    settings = AuthSettings.model_validate(
        {"type": ["NONE"], "url_token_param": "token", "keys": TOKENS}
    )
    return Authenticator(
        settings,
        "https://cb.example.com/hook?token=x",
        [k.get_secret_value() for k in settings.keys],
    )


class TestUrlTokenCompare:
    @pytest.fixture
    def compared(self, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
        """The lengths of both sides of every ``hmac.compare_digest`` call."""
        calls: list[tuple[int, int]] = []
        real = hmac.compare_digest

        def recording(a: bytes, b: bytes) -> bool:
            calls.append((len(a), len(b)))
            return real(a, b)

        monkeypatch.setattr(hmac, "compare_digest", recording)
        return calls

    @pytest.mark.parametrize("token", ["first-token", "second", "nope", "x" * 300])
    def test_every_key_is_compared_as_a_fixed_length_digest(
        self, compared: list[tuple[int, int]], token: str
    ) -> None:
        verdict = token_authenticator().check({}, f"token={token}", 0.0)
        assert verdict.ok == (token in TOKENS)
        assert compared == [(32, 32)] * len(TOKENS)

    def test_a_wrong_token_is_still_refused(self) -> None:
        auth = token_authenticator()
        assert auth.check({}, "token=first-tokeN", 0.0).code == "bad_token"
        assert auth.check({}, "token=" + "t" * 31, 0.0).code == "bad_token"
        assert auth.check({}, "token=" + "t" * 32, 0.0).ok
