"""A small OpenAI-compatible server: the stand-in for a cloud upstream, and for faults.

No cloud is reachable from these machines, so the "cloud" of the hybrid tests is
this server, behind TLS (a throwaway CA from ``trustme``) and requiring its own
key, exactly what the gateway's cloud upstream must handle. It also plays a local
upstream that fails on demand (``mode``), which the real Foundry will not.

- ``GET /v1/models``, ``GET /models/loaded``: its ``models``
- ``POST /v1/chat/completions``: checks ``Authorization: Bearer <key>`` (or
  ``api-key: <key>``), records the request, then by ``mode``:
  ``ok`` answers (streamed when asked: a few chunks, a usage chunk when asked, [DONE]),
  ``fail500`` answers 500, ``hang`` never answers, ``cut`` starts a stream and closes the
  connection after its first chunk.

``requests`` lists every chat request it received (path, model, body), so a test can
prove a prompt did NOT reach the cloud.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPLY = "standin says hello"


class OpenAIStandIn:
    def __init__(self, models: tuple[str, ...], key: str, host: str = "127.0.0.1",
                 port: int = 0, tls_dir: Path | None = None, name: str = "standin") -> None:
        self.models, self.key, self.name = models, key, name
        self.mode = "ok"
        self.requests: list[dict] = []
        self.ca_file: Path | None = None
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30  # a client that connects and says nothing cannot hold a thread

            def log_message(self, *_args) -> None:
                pass

            def _send(self, status: int, doc: object, extra: dict | None = None) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path in ("/v1/models", "/models/loaded"):
                    if self.path == "/models/loaded":
                        self._send(200, list(standin.models))
                    else:
                        self._send(200, {"object": "list", "data": [
                            {"id": m, "object": "model", "owned_by": standin.name}
                            for m in standin.models]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                auth = self.headers.get("authorization", "")
                if auth != f"Bearer {standin.key}" and self.headers.get("api-key") != standin.key:
                    self._send(401, {"error": {"message": "bad key", "code": "unauthorized"}})
                    return
                doc = json.loads(raw or b"{}")
                standin.requests.append({"path": self.path, "model": doc.get("model"),
                                         "body": doc})
                if standin.mode == "fail500":
                    self._send(500, {"error": {"message": "standin failing on purpose"}})
                    return
                if standin.mode == "hang":
                    time.sleep(3600)
                    return
                model = doc.get("model")
                if not doc.get("stream"):
                    self._send(200, {"id": "x", "object": "chat.completion", "model": model,
                                     "choices": [{"index": 0, "finish_reason": "stop",
                                                  "message": {"role": "assistant",
                                                              "content": REPLY}}],
                                     "usage": {"prompt_tokens": 5, "completion_tokens": 3,
                                               "total_tokens": 8}})
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                events = [{"choices": [{"index": 0, "delta": {"content": word + " "},
                                        "finish_reason": None}], "model": model,
                           "object": "chat.completion.chunk"} for word in REPLY.split()]
                if (doc.get("stream_options") or {}).get("include_usage"):
                    events.append({"choices": [], "model": model, "object": "chat.completion.chunk",
                                   "usage": {"prompt_tokens": 5, "completion_tokens": 3,
                                             "total_tokens": 8}})
                for event in [*(f"data: {json.dumps(e)}\n\n" for e in events), "data: [DONE]\n\n"]:
                    data = event.encode()
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    if standin.mode == "cut":
                        self.wfile.flush()
                        self.close_connection = True
                        return
                self.wfile.write(b"0\r\n\r\n")

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        if tls_dir is not None:
            import trustme

            ca = trustme.CA()
            cert = ca.issue_cert(host)
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert.configure_cert(ctx)
            # The handshake in the connection's own thread (on its first read), never in
            # accept(): a client that connects and goes away must not stop the server.
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True,
                                                 do_handshake_on_connect=False)
            self.ca_file = Path(tls_dir) / f"{name}-ca.pem"
            ca.cert_pem.write_to_path(str(self.ca_file))
        self.port = self.server.server_address[1]
        scheme = "https" if tls_dir is not None else "http"
        self.url = f"{scheme}://{host}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                        name=f"standin-{name}")

    def start(self) -> OpenAIStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main(argv: list[str] | None = None) -> None:
    """Run it as its own process (inside a network namespace: a socket belongs to the
    namespace of the process that creates it); ``--count-file`` gets the request list."""
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--tls-dir", type=Path)
    ap.add_argument("--name", default="cloud")
    ap.add_argument("--count-file", type=Path, required=True)
    args = ap.parse_args(argv)
    server = OpenAIStandIn(tuple(args.model), args.key, args.host, args.port, args.tls_dir,
                           args.name)

    class Recorded(list):
        def append(self, item) -> None:
            super().append(item)
            tmp = args.count_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(list(self)))
            tmp.replace(args.count_file)

    server.requests = Recorded()
    server.server.serve_forever()


if __name__ == "__main__":
    main()
