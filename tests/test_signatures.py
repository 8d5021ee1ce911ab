import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from receiver.config import SigningRule
from receiver.signatures import (
    Verifier,
    hex_time,
    parse_hex_time,
    sign,
    signed_prefix,
)

VECTOR_URL = "https://api.example.com/v1/products?live_id=111&limit=10&offset=0"
VECTOR_KEY = "GCTbw44s6MPLh4GqgDpnfuFHgy25Enly"
VECTOR_TIME = "66df9308"
VECTOR_SECRET = "5e7fe8869a12a87ea966d9edbc02e38cd4ce62c73b8b05c638f15835e78902d7"


def test_custom_platform_vector_message_and_secret() -> None:
    prefix = signed_prefix(VECTOR_URL, SigningRule.HOST_PATH_QUERY)
    assert prefix + VECTOR_TIME.encode() == (
        b"api.example.com/v1/products?limit=10&live_id=111&offset=066df9308"
    )
    assert sign(VECTOR_KEY, VECTOR_URL, VECTOR_TIME) == VECTOR_SECRET


def test_live_url_signing_vector_uses_the_same_hmac() -> None:
    digest = hmac.new(VECTOR_KEY.encode(), b"huawei15eed5888", hashlib.sha256).hexdigest()
    assert digest == "ce201856a0957413319e883c8ccae13602f01d3d91e21daf5161964cf708a6a8"


def test_alternative_rules_sign_other_messages() -> None:
    url = "https://cb.example.com/hook?b=2&a=1"
    assert signed_prefix(url, SigningRule.FULL_URL) == b"https://cb.example.com/hook?a=1&b=2"
    assert signed_prefix(url, SigningRule.PATH_QUERY) == b"/hook?a=1&b=2"
    assert signed_prefix("https://cb.example.com/hook", SigningRule.HOST_PATH_QUERY) == (
        b"cb.example.com/hook"
    )


def test_signed_prefix_ignores_signature_parameters() -> None:
    url = "https://h/p?x=1&hwSecret=aa&hwTime=bb"
    assert signed_prefix(url, SigningRule.HOST_PATH_QUERY) == b"h/p?x=1"


def test_verifier_reports_the_rule_that_matched() -> None:
    verifier = Verifier(
        VECTOR_URL, ["other", VECTOR_KEY], [SigningRule.FULL_URL, SigningRule.HOST_PATH_QUERY]
    )
    match = verifier.verify(VECTOR_SECRET, VECTOR_TIME)
    assert match is not None
    assert match.rule is SigningRule.HOST_PATH_QUERY
    assert verifier.verify(VECTOR_SECRET.upper(), VECTOR_TIME) is not None
    assert verifier.verify(VECTOR_SECRET, "66df9309") is None
    assert verifier.verify("0" * 64, VECTOR_TIME) is None


def test_full_url_rule_verifies_when_configured() -> None:
    url = "https://cb.example.com/hook"
    secret = sign("k", url, "1", SigningRule.FULL_URL)
    assert Verifier(url, ["k"], [SigningRule.HOST_PATH_QUERY]).verify(secret, "1") is None
    match = Verifier(url, ["k"], [SigningRule.HOST_PATH_QUERY, SigningRule.FULL_URL]).verify(
        secret, "1"
    )
    assert match is not None and match.rule is SigningRule.FULL_URL


def test_hex_time_round_trip_and_milliseconds_detected() -> None:
    assert hex_time(0x66DF9308) == "66df9308"
    assert parse_hex_time("66df9308") == 0x66DF9308
    millis = format(0x66DF9308 * 1000, "x")
    assert parse_hex_time(millis) == 0x66DF9308
    for bad in ("", "xyz", "0x10", "1" * 17, "６６", " 1"):
        assert parse_hex_time(bad) is None


@given(st.text(max_size=80), st.text(max_size=40))
def test_verifier_never_raises(secret: str, when: str) -> None:
    verifier = Verifier(VECTOR_URL, [VECTOR_KEY], list(SigningRule))
    assert verifier.verify(secret, when) is None
