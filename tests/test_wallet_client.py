"""The API client: URLs, and an error a person can act on for every way a request fails."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from minichain.wallet.client import (NodeClient, NodeError, NodeRequestError, NodeUnreachable, normalize_url,
                                     read_cookie)


@pytest.mark.parametrize("given, url", [
    ("127.0.0.1:8332", "http://127.0.0.1:8332"),
    ("localhost:8332/", "http://localhost:8332"),
    ("http://10.0.0.2:9000/api/", "http://10.0.0.2:9000"),
    ("https://node.example:443", "https://node.example:443"),
    (" http://h:1 ", "http://h:1"),
])
def test_normalize_url(given, url):
    assert normalize_url(given) == url


@pytest.mark.parametrize("bad, words", [("", "empty"), ("ftp://h:1", "http"), ("http://:80", "no host"),
                                        ("h:port", "not a number")])
def test_bad_urls(bad, words):
    with pytest.raises(ValueError, match=words):
        normalize_url(bad)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nothing_listening_names_the_url_and_what_to_do():
    port = free_port()
    with pytest.raises(NodeUnreachable) as info:
        NodeClient(f"127.0.0.1:{port}").status()
    text = str(info.value)
    assert f"http://127.0.0.1:{port}" in text and "connection refused" in text and "--node" in text


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, bytes]] = {}

    def do_GET(self):  # noqa: N802
        code, body = self.routes.get(self.path, (404, b'{"error": "nothing here"}'))
        if code == -1:  # hang up without an answer
            self.connection.close()
            return
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler.routes
    httpd.shutdown()
    httpd.server_close()
    _Handler.routes.clear()


def test_error_json_becomes_a_request_error_with_the_nodes_words(server):
    url, routes = server
    routes["/api/tx/ab"] = (404, b'{"error": "unknown transaction ab"}')
    with pytest.raises(NodeRequestError) as info:
        NodeClient(url).tx("ab")
    assert info.value.status == 404 and info.value.message == "unknown transaction ab"


def test_something_that_is_not_a_minichain_node(server):
    url, routes = server
    routes["/api/status"] = (200, b"<html>hello</html>")
    with pytest.raises(NodeError, match="not answer with JSON"):
        NodeClient(url).status()
    routes["/api/status"] = (500, b"<html>oops</html>")
    with pytest.raises(NodeRequestError, match="HTTP 500"):
        NodeClient(url).status()


def test_a_connection_dropped_mid_request_is_unreachable(server):
    url, routes = server
    routes["/api/status"] = (-1, b"")
    with pytest.raises(NodeUnreachable, match=url):
        NodeClient(url).status()


def test_query_strings_and_path_segments_are_encoded(server):
    url, routes = server
    routes["/api/address/a%2Fb?min_conf=3"] = (200, b'{"ok": 1}')
    assert NodeClient(url).address("a/b", min_conf=3) == {"ok": 1}


def test_control_without_a_token_explains_where_it_comes_from(server):
    url, _ = server
    with pytest.raises(NodeError, match=r"\.cookie.*looked in /x/\.cookie"):
        NodeClient(url, token_hint="/x/.cookie").generate(1, "addr")


def test_repr_never_shows_the_token():
    assert "s3cret" not in repr(NodeClient("h:1", token="s3cret"))


def test_read_cookie(tmp_path):
    assert read_cookie(str(tmp_path)) is None
    (tmp_path / ".cookie").write_text("abc\n")
    assert read_cookie(str(tmp_path)) == "abc"


def test_iterating_a_list_follows_the_cursors_to_the_last_page(server):
    url, routes = server
    routes["/api/address/A/history"] = (200, b'{"history": [1, 2], "next": "c00ff", "tip": "t1"}')
    routes["/api/address/A/history?after=c00ff"] = (200, b'{"history": [3], "next": "m7", "tip": "t1"}')
    routes["/api/address/A/history?after=m7"] = (200, b'{"history": [], "next": null, "tip": "t2"}')
    got = list(NodeClient(url).iter_address_history("A"))
    assert [item for item, _ in got] == [1, 2, 3] and [page["tip"] for _, page in got] == ["t1", "t1", "t1"]
    routes["/api/address/A/utxos?after=x"] = (200, b'{"utxos": [9], "next": null}')
    assert [item for item, _ in NodeClient(url).iter_address_utxos("A", after="x")] == [9]
    routes["/api/blocks?limit=5&after=100"] = (200, b'[{"height": 99}]')
    assert NodeClient(url).blocks(5, after=100) == [{"height": 99}]
