"""Console auth: tokens and roles, the session cookie, CSRF, headers, the open mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from receiver.config import ConfigError, load_settings
from receiver.console.sessions import COOKIE
from receiver.console.tokens import Role, TokenFileError, Tokens, token_digest
from tests.console.conftest import OPERATOR, VIEWER, Console
from tests.helpers import write_config


def test_tokens_file_plain_and_hashed(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"viewer {VIEWER}\noperator sha256:{token_digest(OPERATOR)}  # ops\n")
    tokens = Tokens.load(path)
    assert tokens.role_of(VIEWER) == Role.VIEWER
    assert tokens.role_of(OPERATOR) == Role.OPERATOR
    assert tokens.role_of("sha256:" + token_digest(OPERATOR)) is None  # the hash is no token
    assert tokens.role_of("wrong-token-0123456789") is None


@pytest.mark.parametrize(
    "text", ["admin some-token-0123456789\n", "viewer short\n", "viewer sha256:abc\n", "# none\n"]
)
def test_bad_tokens_files_are_refused_without_echoing_tokens(tmp_path: Path, text: str) -> None:
    path = tmp_path / "tokens"
    path.write_text(text)
    with pytest.raises(TokenFileError) as raised:
        Tokens.load(path)
    assert "some-token" not in str(raised.value) and "short" not in str(raised.value)


def test_an_exposed_listener_without_tokens_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, 8999, extra='\n[admin]\nenabled = true\nhost = "0.0.0.0"\n')
    with pytest.raises(ConfigError, match="not a loopback address"):
        load_settings(config)


async def test_without_credentials_the_api_is_401_and_pages_go_to_login(
    console: Console,
) -> None:
    response = await console.http.get("/api/overview")
    assert response.status_code == 401
    assert set(response.json()) == {"error", "detail"}
    page = await console.http.get("/rooms")
    assert page.status_code == 303 and page.headers["location"] == "/login"
    assert (await console.http.get("/login")).status_code == 200
    wrong = await console.http.get("/api/overview", headers=console.as_role("nope-0123456789ab"))
    assert wrong.status_code == 401


async def test_viewer_reads_but_may_not_replay_or_purge(console: Console) -> None:
    viewer = console.as_role(VIEWER)
    assert (await console.http.get("/api/overview", headers=viewer)).status_code == 200
    purge = await console.http.delete("/api/dead-letters", headers=viewer)
    assert purge.status_code == 403 and purge.json()["error"] == "forbidden"
    operator = console.as_role(OPERATOR)
    assert (await console.http.delete("/api/dead-letters", headers=operator)).json() == {
        "purged": 0
    }


async def test_login_sets_a_strict_session_cookie_and_state_changes_need_csrf(
    console: Console,
) -> None:
    refused = await console.http.post("/login", data={"token": "wrong-0123456789abc"})
    assert refused.status_code == 401
    login = await console.http.post("/login", data={"token": OPERATOR})
    assert login.status_code == 303
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and COOKIE in cookie
    session = (await console.http.get("/api/session")).json()
    assert session["role"] == "operator" and session["csrf"]
    without = await console.http.delete("/api/dead-letters")
    assert without.status_code == 403 and without.json()["error"] == "csrf"
    wrong = await console.http.delete("/api/dead-letters", headers={"x-csrf-token": "x"})
    assert wrong.status_code == 403
    ok = await console.http.delete("/api/dead-letters", headers={"x-csrf-token": session["csrf"]})
    assert ok.status_code == 200
    await console.http.post("/logout", headers={"x-csrf-token": session["csrf"]})
    console.http.cookies.clear()
    assert (await console.http.get("/api/session")).status_code == 401


async def test_strict_security_headers(console: Console) -> None:
    response = await console.http.get("/api/overview", headers=console.as_role(VIEWER))
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    page = await console.http.get("/login")
    assert '<script src="/static/console.js"' in page.text and "<script>" not in page.text


async def test_the_callback_port_never_serves_the_console(console: Console) -> None:
    for path in ("/api/session", "/api/overview", "/rooms", "/login", "/static/console.js"):
        response = await console.public.get(path, headers=console.as_role(OPERATOR))
        assert response.status_code == 404, path


async def test_open_mode_answers_loopback_names_only_and_needs_its_csrf(
    open_console: Console,
) -> None:
    http = open_console.http
    session = (await http.get("/api/session")).json()
    assert session["role"] == "operator"
    rebound = await http.get("/api/session", headers={"host": "attacker.example"})
    assert rebound.status_code == 421
    assert (await http.delete("/api/dead-letters")).status_code == 403
    ok = await http.delete("/api/dead-letters", headers={"x-csrf-token": session["csrf"]})
    assert ok.status_code == 200


def test_host_names() -> None:
    from receiver.console.auth import is_loopback_host

    for host in ("127.0.0.1:9180", "127.0.0.2:80", "[::1]:9180", "[::1]", "LOCALHOST", "localhost"):
        assert is_loopback_host(host), host
    for host in (
        "localhost.attacker.example:80",
        "[::1]evil.com",
        "evil.com",
        "",
        "localhost:80:80",
    ):
        assert not is_loopback_host(host), host
