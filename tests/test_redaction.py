"""Secrets in URLs and callback messages: push-URL stream keys, query tokens, userinfo."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.redaction import (
    REDACTED,
    TooDeep,
    is_secret_name,
    redact_message,
    redact_text,
    redact_url,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtmp://push.example.com/live/abc123", "rtmp://push.example.com/live/[redacted]"),
        ("rtmps://h:443/app/inst/key?x=1", "rtmps://h:443/app/inst/[redacted]?x=1"),
        ("rtmp://h/live", "rtmp://h/live"),  # the application alone: the key went elsewhere
        ("rtmp://h/live/k?auth_key=1-0-0-abc", "rtmp://h/live/[redacted]?auth_key=[redacted]"),
        (
            "rtmp://h/app/k?txSecret=a&txTime=6",
            "rtmp://h/app/[redacted]?txSecret=[redacted]&txTime=6",
        ),
        (
            "rtmp://h/app/k?sign=a&wsSecret=b",
            "rtmp://h/app/[redacted]?sign=[redacted]&wsSecret=[redacted]",
        ),
        (
            "srt://h:9000?streamid=live/key&latency=20",
            "srt://h:9000?streamid=[redacted]&latency=20",
        ),
        (
            "srt://h:9000?streamid=#!::r=live/key,m=publish",
            "srt://h:9000?streamid=[redacted]#[redacted]",
        ),
        ("srt://h:9000?passphrase=pw", "srt://h:9000?passphrase=[redacted]"),
        ("https://h/p?token=t&x=1", "https://h/p?token=[redacted]&x=1"),
        ("https://h/p/keep?x=1", "https://h/p/keep?x=1"),
        ("https://user:pw@h/p", "https://user:[redacted]@h/p"),
        ("RTMP://H/Live/K", "RTMP://H/Live/[redacted]"),
        ("http://[not-ipv6/x", REDACTED),
        ("h/p?token=t", "h/p?token=[redacted]"),  # no scheme: the query still counts
        ("#rtmp://h/?token=s", "#rtmp://h/?token=[redacted]"),  # the scheme is read first
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_every_value_hides_the_whole_query() -> None:
    assert redact_url("https://h/cb?t=abc&tenant=a", every_value=True) == (
        "https://h/cb?t=[redacted]&tenant=[redacted]"
    )


def test_text_without_urls_is_the_same_object() -> None:
    text = "a plain title: rtmp is mentioned, no URL"
    assert redact_text(text) is text


def test_urls_inside_text_are_redacted() -> None:
    assert redact_text('failed "rtmp://h/live/k1" then rtmp://h/live/k2.') == (
        'failed "rtmp://h/live/[redacted]" then rtmp://h/live/[redacted]'
    )


def test_redact_message_hides_secret_fields_and_push_urls_at_any_depth() -> None:
    message = {
        "room_id": "r",
        "stream_key": "k",
        "empty_token": "",
        "nested": [{"url": "rtmp://h/live/k"}, ["rtmp://h/a/k"]],
    }
    assert redact_message(message, 8) == {
        "room_id": "r",
        "stream_key": REDACTED,
        "empty_token": "",
        "nested": [{"url": "rtmp://h/live/[redacted]"}, ["rtmp://h/a/[redacted]"]],
    }
    assert message["stream_key"] == "k"  # a copy


def test_redact_message_refuses_past_its_depth() -> None:
    deep: object = 1
    for _ in range(5):
        deep = [deep]
    assert redact_message({"x": deep}, 6) == {"x": deep}
    with pytest.raises(TooDeep):
        redact_message({"x": deep}, 5)


@given(
    st.sampled_from(["rtmp://", "RTMPS://", "srt://", "https://", "http://u:p@", "x "]),
    st.text(max_size=60),
)
def test_any_text_with_a_url_is_redacted_without_error(scheme: str, rest: str) -> None:
    text = f"see {scheme}{rest}"
    assert isinstance(redact_text(text), str)
    assert isinstance(redact_message({"output_url": text, "list": [text]}, 4), dict)


@given(
    st.sampled_from(["rtmp://", "RTMPS://", "srt://", "https://", "http://"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
    | st.text(alphabet="aZ09/:?&=#%+@[]._-~ ", max_size=60),
)
def test_a_url_alone_is_redacted_as_inside_a_text(scheme: str, rest: str) -> None:
    url = scheme + rest
    alone = redact_text(url)
    assert redact_text(f"see {url} now") == f"see {alone} now"


def test_long_names_are_judged_without_filling_the_caches() -> None:
    from receiver.redaction import _is_secret_param

    long = "x" * 200 + "_token"
    redact_url("https://h/p?ok=1")  # the short name is cached before counting
    names, params = is_secret_name.cached(), _is_secret_param.cached()
    assert redact_url(f"https://h/p?{long}=v&ok=1") == f"https://h/p?{long}=[redacted]&ok=1"
    assert redact_message({long: "v"}, 4) == {long: REDACTED}
    assert is_secret_name.cached() == names
    assert _is_secret_param.cached() == params
