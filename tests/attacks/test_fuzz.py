"""Hypothesis fuzzing of the verifier and the parser, in process, with every log captured.

The number of inputs per property is the profile's ``fuzz_examples`` (300 short, 2000
long); every property counts its inputs into the run's ledger.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import quote

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.authentication import Authenticator
from receiver.config import AuthSettings, AuthType, SigningRule
from receiver.events import BadEvent, parse_callback
from receiver.signatures import Verifier, hex_time, sign
from tests.faults.support import LEDGER, Profile, scan_for_secrets
from tests.helpers import KEY

URL = "https://callbacks.example.com/callbacks/metastudio?tenant=acme"
CODES = {
    "missing_signature",
    "malformed_signature",
    "bad_signature",
    "signature_expired",
    "signature_from_future",
    "query_mismatch",
    "missing_token",
    "bad_token",
}
BODY_CODES = {
    "invalid_json",
    "invalid_event",
    "field_too_long",
    "message_too_large",
    "message_too_deep",
}
RULES = [SigningRule.HOST_PATH_QUERY, SigningRule.FULL_URL, SigningRule.PATH_QUERY]


def authenticator(key: str = KEY) -> Authenticator:
    auth = AuthSettings(type=[AuthType.MSS_A, AuthType.MSS_A_HEAD], keys=[key], rules=RULES)
    return Authenticator(auth, URL, [key])


def fuzz(profile: Profile) -> settings:
    return settings(
        max_examples=profile.fuzz_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        database=None,
    )


header_names = st.sampled_from([b"x-hw-mss-secret", b"x-hw-mss-time", b"content-type", b"x"])
header_values = st.one_of(
    st.binary(max_size=80),
    st.text(alphabet="0123456789abcdefABCDEF", max_size=80).map(str.encode),
    st.integers(0, 2**70).map(lambda n: format(n, "x").encode()),
)
queries = st.one_of(
    st.text(max_size=200),
    st.lists(
        st.tuples(st.sampled_from(["hwSecret", "hwTime", "tenant", "x"]), st.text(max_size=70)),
        max_size=5,
    ).map(lambda pairs: "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs)),
)


def test_authenticator_never_raises_and_refuses_random_proofs(
    profile: Profile, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    checker = authenticator()
    count = 0

    @fuzz(profile)
    @given(
        headers=st.dictionaries(header_names, header_values, max_size=4),
        query=queries,
        now=st.floats(0, 2**40, allow_nan=False),
    )
    def prop(headers: dict[bytes, bytes], query: str, now: float) -> None:
        nonlocal count
        count += 1
        verdict = checker.check(headers, query, now)
        assert not verdict.ok, (headers, query)
        assert verdict.code in CODES

    prop()
    LEDGER.add(fuzz_inputs=count, attacks_tried=count, attacks_refused=count)
    assert count >= profile.fuzz_examples // 2
    assert not scan_for_secrets({"caplog": caplog.text}, [KEY])


def test_authenticator_accepts_every_genuine_signature(
    profile: Profile, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    count = 0

    @fuzz(profile)
    @given(
        key=st.text(min_size=1, max_size=32).filter(lambda k: "\x00" not in k),
        offset=st.integers(-100, 100),
        rule=st.sampled_from(RULES),
        milliseconds=st.booleans(),
        via_query=st.booleans(),
    )
    def prop(key: str, offset: int, rule: SigningRule, milliseconds: bool, via_query: bool) -> None:
        nonlocal count
        count += 1
        now = time.time()
        when = now + offset
        stamp = format(int(when * 1000), "x") if milliseconds else hex_time(when)
        secret = sign(key, URL, stamp, rule)
        checker = authenticator(key)
        if via_query:
            query = f"tenant=acme&hwSecret={secret}&hwTime={stamp}"
            verdict = checker.check({}, query, now)
        else:
            headers = {b"x-hw-mss-secret": secret.encode(), b"x-hw-mss-time": stamp.encode()}
            verdict = checker.check(headers, "tenant=acme", now)
        assert verdict.ok, verdict
        assert verdict.rule == rule.value
        tampered = secret[:-1] + ("0" if secret[-1] != "0" else "1")
        assert Verifier(URL, [key], RULES).verify(tampered, stamp) is None

    prop()
    LEDGER.add(fuzz_inputs=count)
    assert count >= profile.fuzz_examples // 2


def test_verifier_never_raises_on_any_text(profile: Profile) -> None:
    verifier = Verifier(URL, [KEY, "second-key"], RULES)
    count = 0

    @fuzz(profile)
    @given(
        secret=st.one_of(
            st.text(max_size=80), st.text("0123456789abcdef", min_size=64, max_size=64)
        ),
        time_text=st.text(max_size=20),
    )
    def prop(secret: str, time_text: str) -> None:
        nonlocal count
        count += 1
        assert verifier.verify(secret, time_text) is None

    prop()
    LEDGER.add(fuzz_inputs=count, attacks_tried=count, attacks_refused=count)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
messages = st.dictionaries(
    st.sampled_from(["room_id", "job_id", "reply_id", "state", "stream_key", "seq", "x"]),
    json_values,
    max_size=6,
)
big_numbers = st.integers().map(
    lambda n: (
        b'{"event_type": "REPLY_COMMAND_FINISH", "message": "{\\"room_id\\": %d, '
        b'\\"job_id\\": \\"j\\"}"}' % n
    )
)
bodies = st.one_of(
    st.binary(max_size=300),
    big_numbers,
    json_values.map(orjson.dumps),
    st.fixed_dictionaries(
        {
            "event_type": st.one_of(
                st.sampled_from(
                    ["SHOOT_SCRIPT_SWITCH", "RTMP_STREAM_STATE_CHANGE", "REPLY_COMMAND_FINISH"]
                ),
                json_values,
            ),
            "message": st.one_of(
                messages.map(lambda m: orjson.dumps(m).decode()), messages, json_values
            ),
        }
    ).map(orjson.dumps),
)


def test_parser_accepts_or_refuses_cleanly(profile: Profile) -> None:
    count = accepted = 0

    @fuzz(profile)
    @given(body=bodies)
    def prop(body: bytes) -> None:
        nonlocal count, accepted
        count += 1
        try:
            callback = parse_callback(body)
        except BadEvent as error:
            refused_with = error.code
        else:
            refused_with = ""
        if refused_with:
            assert refused_with in BODY_CODES
            return
        accepted += 1
        assert isinstance(callback.message, dict)
        assert isinstance(callback.room_id, str) and isinstance(callback.job_id, str)
        if "stream_key" in callback.message:
            assert callback.message["stream_key"] in ("[redacted]", None, "")
        if callback.known:
            assert callback.room_id and callback.job_id
        orjson.dumps(callback.message)  # the envelope can always be encoded

    prop()
    LEDGER.add(fuzz_inputs=count)
    print(f"parser: {count} inputs, {accepted} accepted")
    assert accepted > 0 and accepted < count


def test_numeric_room_id_is_either_refused_or_kept() -> None:
    """Found by the parser fuzzing: ``{"room_id": 0, "job_id": "j"}`` was accepted as a
    known event but with ``Callback.room_id == ""``, so the envelope had no room: lane,
    routes by room and enrichment all saw an empty room."""
    body = orjson.dumps(
        {"event_type": "REPLY_COMMAND_FINISH", "message": '{"room_id": 0, "job_id": "j"}'}
    )
    try:
        callback = parse_callback(body)
    except BadEvent:
        return  # refusing it is as good
    assert callback.room_id == "0"
