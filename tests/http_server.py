"""A loopback HTTP server with Range support, for download tests (no network needed)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def serve(files: dict[str, bytes], failures: dict[str, int] | None = None) -> Iterator[tuple[str, list[str]]]:
    """Serve `files` (path -> bytes) on 127.0.0.1; yields (base URL, the Range headers received).

    `failures` (path -> n): the first n requests of that path get HTTP 503, as an overloaded server's."""
    ranges: list[str] = []
    failing = dict(failures or {})

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = files.get(self.path)
            if failing.get(self.path, 0) > 0:
                failing[self.path] -= 1
                self.send_error(503)
                return
            if body is None:
                self.send_error(404)
                return
            header = self.headers.get("Range")
            start = 0
            if header:
                ranges.append(header)
                start = int(header.split("=")[1].split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            self.wfile.write(body[start:])

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", ranges
    finally:
        server.shutdown()
        server.server_close()
