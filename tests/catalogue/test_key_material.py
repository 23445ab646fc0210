"""A12, H06: key material from where it must never come: a JWKS key as an HMAC secret, a
key URL in the header."""

from __future__ import annotations

import http.client
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.catalogue.kit import (
    ATTACKER_SECRET,
    HS_HEADER,
    INVALID,
    TRANSPORTS,
    Kit,
    assert_accepted,
    assert_refused,
    attacker_jwk,
    carrying,
    compact_json,
    hmac_jws,
    jwks_settings,
    profile_settings,
)
from tests.harness import (
    Keys,
    public_pem,
)
from tests.jwks_server import JWKSServer, public_jwk


@dataclass
class LoopbackServer:
    """A local HTTP server that counts the requests it receives."""

    url: str
    hits: list[str]


@pytest.fixture
def loopback_server(keys: Keys) -> Iterator[LoopbackServer]:
    """Serves the attacker's JWKS and certificate, and records every request."""
    hits: list[str] = []
    jwks = json.dumps({"keys": [{**attacker_jwk(keys), "kid": "k1"}]}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(jwks)))
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    port = server.server_address[1]
    # Prove the counter counts before relying on it reading zero.
    probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    probe.request("GET", "/probe")
    probe.getresponse().read()
    probe.close()
    assert hits == ["/probe"]
    hits.clear()
    try:
        yield LoopbackServer(f"http://127.0.0.1:{port}", hits)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("profile", "parameter"),
    [
        pytest.param("RS256", "jku", id="H06-jku-loopback-RS256"),
        pytest.param("RS256", "x5u", id="H06-x5u-loopback-RS256"),
        pytest.param("RS256-kid", "jku", id="H06-jku-loopback-kid-map"),
        pytest.param("HS", "jku", id="H06-jku-loopback-HS"),
    ],
)
async def test_H06_key_url_in_header_is_never_fetched(
    profile: str,
    parameter: str,
    transport: str,
    kit: Kit,
    loopback_server: LoopbackServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    header: dict[str, Any] = {parameter: f"{loopback_server.url}/attacker", "kid": "k1"}
    if profile == "HS":
        token = kit.hs(header={**HS_HEADER, **header}, key=ATTACKER_SECRET)
    else:
        token = kit.signed("RS256", header={"alg": "RS256", **header}, key=kit.keys.rsa_other)
    await assert_refused(
        carrying(token, transport),
        INVALID,
        settings=profile_settings(profile, kit.keys),
        caplog=caplog,
    )
    assert loopback_server.hits == []


# --- A12: JWKS key material as an HMAC secret ---------------------------------------------------


@pytest.mark.parametrize("transport", ["subprotocol", "query"])
@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("jwk-json", id="A12-hs256-keyed-with-the-jwk-json"),
        pytest.param("jwk-pem", id="A12-hs256-keyed-with-the-jwk-pem"),
        pytest.param("jwk-modulus", id="A12-hs256-keyed-with-the-jwk-modulus"),
    ],
)
async def test_A12_hmac_token_naming_a_jwks_rsa_kid_is_refused(
    secret: str,
    transport: str,
    kit: Kit,
    jwks_server: JWKSServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """CVE-2026-48523/48526: ``alg: HS256`` with the ``kid`` of an RSA JWK, MACed with that
    key's public material. HS256 is outside the (asymmetric) allowlist, so it is refused
    before any key is fetched."""
    jwk = public_jwk(kit.keys.rsa, "k1", alg="RS256")
    jwks_server.publish(jwk)
    material = {
        "jwk-json": json.dumps(jwk).encode(),
        "jwk-pem": public_pem(kit.keys.rsa).encode(),
        "jwk-modulus": jwk["n"].encode(),
    }[secret]
    token = hmac_jws(
        compact_json({"alg": "HS256", "kid": "k1"}), compact_json(kit.claims()), key=material
    )
    await assert_refused(
        carrying(token, transport), INVALID, settings=jwks_settings(jwks_server), caplog=caplog
    )
    assert jwks_server.requests == 0


async def test_A12_positive_control_rs256_token_with_the_jwks_kid_is_accepted(
    kit: Kit, jwks_server: JWKSServer, caplog: pytest.LogCaptureFixture
) -> None:
    jwks_server.publish(public_jwk(kit.keys.rsa, "k1", alg="RS256"))
    token = kit.rs256(kid="k1")
    await assert_accepted(
        carrying(token, "subprotocol"), token, settings=jwks_settings(jwks_server), caplog=caplog
    )
    assert jwks_server.requests == 1
