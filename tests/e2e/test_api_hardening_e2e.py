"""The API's refusals against a real node (issue #23): every bad request gets a 4xx with
a reason, never a 500; no cross-site writes; CORS for loopback pages only; the token's
error does not reveal where the node keeps its data. Each case gave a 500, a CORS grant
or the data directory before."""

from __future__ import annotations

import http.client
import json

import pytest

pytestmark = pytest.mark.slow


def raw_request(node, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", node.api_port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, dict(resp.getheaders()), data
    finally:
        conn.close()


def test_bad_requests_get_a_4xx_with_a_reason_never_a_500(network):
    a = network.add("a")
    deep = b"[" * 200_000 + b"]" * 200_000
    cases = [
        ("GET", "/api/block/%C2%B2", None, {}),                         # "²": isdigit() but not int()
        ("GET", "/api/block/%D9%A3", None, {}),                         # an Arabic-Indic digit
        ("POST", "/api/tx", deep, {"Content-Type": "application/json"}),
        ("POST", "/api/control/peers/ban", json.dumps({"address": "127.0.0.1:1", "seconds": 10**400}).encode(),
         {"Content-Type": "application/json", "Authorization": f"Bearer {a.token}"}),
        ("POST", "/api/control/peers/ban", b'{"address": "127.0.0.1:1", "seconds": 1e400}',
         {"Content-Type": "application/json", "Authorization": f"Bearer {a.token}"}),
        ("POST", "/api/control/peers/ban", json.dumps({"address": "127.0.0.1:1", "seconds": -5}).encode(),
         {"Content-Type": "application/json", "Authorization": f"Bearer {a.token}"}),
    ]
    for method, path, body, headers in cases:
        status, _, data = raw_request(a, method, path, body, headers)
        assert 400 <= status < 500, (path, body[:40] if body else None, status, data[:200])
        assert json.loads(data).get("error"), data[:200]
    assert "Traceback" not in a.log_text() and a.running


def test_no_cross_site_writes_and_cors_only_for_loopback_pages(network):
    a = network.add("a")
    # A cross-site form can POST text/plain without a preflight: refused.
    status, _, data = raw_request(a, "POST", "/api/tx", b'{"hex": "00"}', {"Content-Type": "text/plain"})
    assert status == 415, (status, data)
    status, _, _ = raw_request(a, "POST", "/api/control/shutdown", b"{}",
                               {"Content-Type": "text/plain", "Authorization": f"Bearer {a.token}"})
    assert status == 415 and a.running
    # CORS: a page on loopback may read; a page whose origin merely matches the Host
    # header it sent (DNS rebinding) may not.
    _, headers, _ = raw_request(a, "GET", "/api/status", None, {"Origin": "http://127.0.0.1:9999"})
    assert headers.get("Access-Control-Allow-Origin") == "http://127.0.0.1:9999"
    _, headers, _ = raw_request(a, "GET", "/api/status", None,
                                {"Origin": "http://evil.example:8332", "Host": "evil.example:8332"})
    assert "Access-Control-Allow-Origin" not in headers


def test_the_token_error_does_not_reveal_the_data_directory(network):
    a = network.add("a")
    status, _, data = raw_request(a, "POST", "/api/control/mining/stop", b"{}", {"Content-Type": "application/json"})
    assert status == 401
    assert a.datadir not in data.decode() and ".cookie" in data.decode()
