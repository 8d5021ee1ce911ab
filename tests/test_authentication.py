import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.authentication import Authenticator
from receiver.config import AuthSettings, AuthType, SigningRule
from receiver.signatures import Verifier, hex_time, sign

URL = "https://cb.example.com/hooks/metastudio?tenant=acme"
KEY = "k" * 32
NOW = 1_750_000_000.0


def authenticator(**overrides: object) -> Authenticator:
    values: dict[str, object] = {"type": ["MSS_A", "MSS_A_HEAD"], "keys": ["old-key", KEY]}
    values.update(overrides)
    settings = AuthSettings.model_validate(values)
    return Authenticator(settings, URL, [k.get_secret_value() for k in settings.keys])


def head(secret: str, when: str) -> dict[bytes, bytes]:
    return {b"x-hw-mss-secret": secret.encode(), b"x-hw-mss-time": when.encode()}


def test_mss_a_head_accepts_a_valid_signature_with_any_key() -> None:
    when = hex_time(NOW)
    verdict = authenticator().check(head(sign(KEY, URL, when), when), "tenant=acme", NOW)
    assert verdict.ok and verdict.auth_type == "MSS_A_HEAD" and verdict.rule == "host_path_query"
    verdict = authenticator().check(head(sign("old-key", URL, when), when), "tenant=acme", NOW)
    assert verdict.ok


def test_mss_a_query_signature_is_accepted() -> None:
    when = hex_time(NOW)
    query = f"tenant=acme&hwSecret={sign(KEY, URL, when)}&hwTime={when}"
    verdict = authenticator().check({}, query, NOW)
    assert verdict.ok and verdict.auth_type == "MSS_A"
    assert verdict.proof and verdict.signed_at == int(NOW)


def test_millisecond_time_is_detected() -> None:
    when = format(int(NOW * 1000), "x")
    verdict = authenticator().check(head(sign(KEY, URL, when), when), "tenant=acme", NOW)
    assert verdict.ok


@pytest.mark.parametrize(
    ("headers", "query", "code"),
    [
        ({}, "tenant=acme", "missing_signature"),
        (head("", "66df9308"), "tenant=acme", "missing_signature"),
        (head("ab" * 32, "zz"), "tenant=acme", "malformed_signature"),
        (head("nothex", hex_time(NOW)), "tenant=acme", "malformed_signature"),
        (head("é" * 64, hex_time(NOW)), "tenant=acme", "malformed_signature"),
        (head("ab" * 32, hex_time(NOW)), "tenant=acme", "bad_signature"),
        (
            head(sign(KEY, URL, hex_time(NOW - 121)), hex_time(NOW - 121)),
            "tenant=acme",
            "signature_expired",
        ),
        (
            head(sign(KEY, URL, hex_time(NOW + 121)), hex_time(NOW + 121)),
            "tenant=acme",
            "signature_from_future",
        ),
        (head(sign(KEY, URL, hex_time(NOW)), hex_time(NOW)), "tenant=evil", "query_mismatch"),
        (head(sign(KEY, URL, hex_time(NOW)), hex_time(NOW)), "tenant=acme&x=1", "query_mismatch"),
        (head(sign(KEY, URL, hex_time(NOW)), hex_time(NOW)), "", "query_mismatch"),
        (head(sign("wrong", URL, hex_time(NOW)), hex_time(NOW)), "tenant=acme", "bad_signature"),
    ],
)
def test_rejections_carry_a_code(headers: dict[bytes, bytes], query: str, code: str) -> None:
    assert authenticator().check(headers, query, NOW).code == code


def test_non_ascii_header_bytes_are_malformed_not_errors() -> None:
    verdict = authenticator().check(
        head("x", "1") | {b"x-hw-mss-secret": b"\xff" * 64}, "tenant=acme", NOW
    )
    assert verdict.code == "malformed_signature"


def test_signature_for_another_url_is_refused() -> None:
    when = hex_time(NOW)
    other = sign(KEY, "https://cb.example.com/other?tenant=acme", when)
    assert authenticator().check(head(other, when), "tenant=acme", NOW).code == "bad_signature"


def test_alternative_rule_only_when_configured() -> None:
    when = hex_time(NOW)
    secret = sign(KEY, URL, when, SigningRule.FULL_URL)
    assert authenticator().check(head(secret, when), "tenant=acme", NOW).code == "bad_signature"
    verdict = authenticator(rules=["host_path_query", "full_url"]).check(
        head(secret, when), "tenant=acme", NOW
    )
    assert verdict.ok and verdict.rule == "full_url"


def test_header_type_not_enabled_is_not_accepted() -> None:
    when = hex_time(NOW)
    verdict = authenticator(type="MSS_A").check(
        head(sign(KEY, URL, when), when), "tenant=acme", NOW
    )
    assert verdict.code == "missing_signature"


def test_none_with_url_token() -> None:
    auth = authenticator(type="NONE", url_token_param="token", keys=["t0ken"])
    assert auth.check({}, "token=t0ken", NOW).ok
    assert auth.check({}, "token=wrong", NOW).code == "bad_token"
    assert auth.check({}, "", NOW).code == "missing_token"
    assert auth.check({}, "token=t0ken&token=t0ken", NOW).code == "missing_token"


def test_none_unauthenticated_must_be_explicit() -> None:
    with pytest.raises(ValueError, match="allow_unauthenticated"):
        AuthSettings.model_validate({"type": "NONE"})
    auth = authenticator(type="NONE", allow_unauthenticated=True, keys=[])
    verdict = auth.check({}, "", NOW)
    assert verdict.ok and verdict.auth_type == AuthType.NONE.value


def test_same_request_gives_the_same_proof() -> None:
    when = hex_time(NOW)
    first = authenticator().check(head(sign(KEY, URL, when), when), "tenant=acme", NOW)
    again = authenticator().check(head(sign(KEY, URL, when), when), "tenant=acme", NOW + 5)
    assert first.proof == again.proof


@given(
    st.dictionaries(
        st.sampled_from([b"x-hw-mss-secret", b"x-hw-mss-time", b"other"]), st.binary(max_size=80)
    ),
    st.text(max_size=120),
)
def test_check_never_raises(headers: dict[bytes, bytes], query: str) -> None:
    verdict = authenticator().check(headers, query, NOW)
    assert not verdict.ok


def test_a_genuine_pair_is_verified_once_and_still_held_to_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checks = authenticator()
    computed: list[str] = []
    verify = Verifier.verify

    def counting(self: Verifier, secret: str, time_text: str) -> object:
        computed.append(time_text)
        return verify(self, secret, time_text)

    monkeypatch.setattr(Verifier, "verify", counting)
    first, second = hex_time(NOW), hex_time(NOW + 1)
    for _ in range(3):
        assert checks.check(head(sign(KEY, URL, first), first), "tenant=acme", NOW).ok
    assert checks.check(head(sign(KEY, URL, second), second), "tenant=acme", NOW).ok
    for _ in range(2):  # a wrong signature is never remembered
        wrong = checks.check(head(sign("k2", URL, first), first), "tenant=acme", NOW)
        assert wrong.code == "bad_signature"
    assert computed == [first, second, first, first]
    # A remembered pair is judged again against the clock and the query.
    genuine = head(sign(KEY, URL, first), first)
    assert checks.check(genuine, "tenant=acme", NOW + 121).code == "signature_expired"
    assert checks.check(genuine, "tenant=acme", NOW - 121).code == "signature_from_future"
    assert checks.check(genuine, "tenant=evil", NOW).code == "query_mismatch"
    assert checks.check(genuine, "tenant=acme", NOW).ok
    assert computed == [first, second, first, first]
