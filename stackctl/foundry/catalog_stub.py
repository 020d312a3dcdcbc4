"""An empty model catalog on loopback, for servers that serve a local model.

Why: a server that serves a BYOM folder never needs the public catalog, yet the
runtime fetches it at start-up and on every root ``/v1/*`` call — offline that
stalls ~4 s each time. Pointing ``catalog_urls`` at this stub makes those calls
instant and the server independent of the network. It lives in the server
process (a daemon thread) for as long as the server runs.
"""

from __future__ import annotations

import http.server
import threading

CATALOG_PATH = "/asset-gallery/v1.0/models"  # the SDK requires URLs ending in this
_EMPTY = b'{"value":[]}'


class _Handler(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(_EMPTY)))
        self.end_headers()
        self.wfile.write(_EMPTY)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:  # keep the log quiet
        pass


def start() -> str:
    """Start the stub on an ephemeral loopback port; return its catalog URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="catalog-stub", daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}{CATALOG_PATH}"
