"""The LitServe pieces of `i2i serve`: the worker's LitAPI (load, batch, translate, encode) and a LitServer
whose translate route reads raw or multipart uploads (LitServe's own route reads JSON or form fields only).

Imported only when serving: litserve is the optional extra `i2i[serve]`."""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

import litserve as ls
from fastapi import HTTPException, Request, Response
from fastapi.responses import JSONResponse
from litserve.server import RegularRequestHandler

from i2i_cli.serve.model import ModelFacts, TranslationRequest, TranslationResult, Translators
from i2i_cli.serve.service import (
    FIELDS,
    MIME_TYPES,
    ROUTE,
    RequestError,
    ServeOptions,
    encode_result,
    read_request,
)

log = logging.getLogger("i2i.serve")


class TranslatorAPI(ls.LitAPI):
    """Runs in LitServe's worker process: the model is loaded in `setup`, after the process starts."""

    def __init__(self, checkpoint: str, options: ServeOptions) -> None:
        super().__init__(max_batch_size=options.max_batch, batch_timeout=options.batch_timeout, api_path=ROUTE)
        self.checkpoint, self.options = checkpoint, options
        self.translators: Translators | None = None

    def setup(self, device: str) -> None:
        requested = self.options.device
        self.translators = Translators(self.checkpoint, requested if requested != "auto" else device,
                                       self.options.precision, self.options.direction)

    def decode_request(self, request: TranslationRequest) -> TranslationRequest:  # type: ignore[override]
        return request  # decoded and checked by the API server before it was queued

    def batch(self, inputs: list[TranslationRequest]) -> list[TranslationRequest]:
        return inputs

    def predict(self, x: Any) -> Any:
        assert self.translators is not None
        if isinstance(x, list):
            return self.translators.translate(x)
        return self.translators.translate([x])[0]

    def unbatch(self, output: list[TranslationResult]) -> list[TranslationResult]:
        return output

    def encode_response(self, output: TranslationResult) -> Any:
        return encode_result(output)


class _UploadHandler(RegularRequestHandler):
    async def _prepare_request(self, request: Any, request_type: Any) -> Any:
        server: TranslationServer = self.server  # type: ignore[assignment]
        try:
            return await read_request(request, server.facts, server.max_pixels)
        except RequestError as exc:
            raise HTTPException(exc.status, exc.reason) from None


def _openapi_body() -> dict[str, Any]:
    """The translate route's request body and query fields, for /openapi.json and /docs."""
    image = {"type": "string", "format": "binary"}
    fields = [{"name": name, "in": "query", "required": False,
               "schema": {"type": "integer" if name in ("seed", "tile", "overlap") else "string"}} for name in FIELDS]
    return {
        "parameters": fields,
        "requestBody": {"required": True, "content": {
            "application/octet-stream": {"schema": image},
            "image/png": {"schema": image}, "image/jpeg": {"schema": image},
            "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                               "properties": {"image": image, "style_ref": image}}}}},
        "responses": {"200": {"description": "the translated image",
                              "content": {mime: {"schema": image} for mime in MIME_TYPES}},
                      "4XX": {"description": "a one-line reason: {\"detail\": \"...\"}"}},
    }


class _RequestLog:
    """One plain line per translate request: status, size of its batch, seconds (logger i2i.serve, INFO).
    A pure ASGI middleware: it only watches what is sent, so LitServe's body-size check still answers 413."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != ROUTE:
            await self.app(scope, receive, send)
            return
        start, seen = time.perf_counter(), {"status": 500, "batch": ""}

        async def watch(message: Any) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                seen["batch"] = dict(message.get("headers", [])).get(b"x-i2i-batch", b"").decode()
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            log.info("serve: %s %s %d in %.2f s%s", scope["method"], ROUTE, seen["status"],
                     time.perf_counter() - start, f" (batch {seen['batch']})" if seen["batch"] else "")


class TranslationServer(ls.LitServer):
    """LitServer with the upload route, /metadata, and the model's facts in /info."""

    def __init__(self, api: TranslatorAPI, facts: ModelFacts, options: ServeOptions) -> None:
        self.facts, self.max_pixels = facts, options.max_pixels
        accelerator = "cpu" if options.device == "cpu" else ("cuda" if options.device.startswith("cuda") else "auto")
        super().__init__(api, accelerator=accelerator, devices=1, workers_per_device=1, timeout=options.timeout,
                         model_metadata=facts.to_json(), max_payload_size=options.max_bytes,
                         middlewares=[_RequestLog])

    def _register_api_endpoints(self, lit_api: ls.LitAPI, request_type: Any, response_type: Any) -> None:
        handler = _UploadHandler(lit_api, self)
        facts = self.facts

        async def translate(request: Request) -> Response:
            return await handler.handle_request(request, Request)

        async def metadata() -> JSONResponse:
            return JSONResponse(facts.to_json())

        self.app.add_api_route(lit_api.api_path, translate, methods=["POST"], response_class=Response,
                               summary="Translate one image (raw bytes or multipart field image)",
                               openapi_extra=_openapi_body())
        self.app.add_api_route("/metadata", metadata, methods=["GET"], summary="What model is loaded")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_server(checkpoint: str, facts: ModelFacts, options: ServeOptions) -> None:
    """Start the service and block until it is stopped (Ctrl+C)."""
    server = TranslationServer(TranslatorAPI(checkpoint, options), facts, options)
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop: LitServe's graceful shutdown, as Ctrl+C
    server.run(host=options.host, port=options.port, generate_client_file=False, log_level="warning",
               num_api_servers=1)
