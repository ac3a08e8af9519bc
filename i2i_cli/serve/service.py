"""`i2i serve`: a translator as an HTTP service on LitServe.

The API server process reads each request (raw image bytes or a multipart upload, options as query or form
fields), decodes and checks it and answers a bad one at once with a 4xx and a one-line JSON reason; only good
requests reach the queue. LitServe's worker process gathers what arrives within the batch timeout (up to
--max-batch) and `Translators.translate` runs each group of same-size, same-option requests in one forward
pass. Routes: POST /translate, GET /metadata, GET /health (LitServe's), GET /info, GET /docs (OpenAPI).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from i2i_cli.errors import BadImageError, ConfigError
from i2i_cli.serve.model import DIRECTIONS, ModelFacts, TranslationRequest, TranslationResult, check_request

ROUTE = "/translate"
FIELDS = ("direction", "domain", "seed", "tile", "overlap")  # the options a request may set
MIME_TYPES = ("image/png", "image/jpeg", "image/webp")


@dataclass
class ServeOptions:
    """`i2i serve`'s options (the defaults are its defaults)."""

    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "auto"
    precision: str = "auto"  # bf16 on a CPU with native bf16, else fp32 (engine/device.py)
    direction: str = "AtoB"
    max_batch: int = 8
    batch_timeout: float = 0.05  # seconds the worker waits for more requests to fill a batch
    max_pixels: int = 4096 * 4096
    max_bytes: int = 50 * 1024 * 1024
    timeout: float = 60.0  # seconds a request may wait in the queue before it is answered 504


class RequestError(Exception):
    """A request refused before it is queued: the status and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def negotiate(accept: str) -> str:
    """The encoding to answer with: the first type of Accept that i2i writes (PNG for */*, image/* or none)."""
    for part in (p.split(";")[0].strip().lower() for p in accept.split(",")):
        if part in MIME_TYPES:
            return part
        if part in ("", "*/*", "image/*"):
            return "image/png"
    raise RequestError(406, f"Accept {accept}: this service answers {', '.join(MIME_TYPES)}")


def _int_field(fields: dict[str, str], name: str, default: int) -> int:
    value = fields.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise RequestError(400, f"{name}={value}: not an integer") from None


def build_request(image_bytes: bytes, fields: dict[str, str], accept: str, style_bytes: bytes | None,
                  facts: ModelFacts, max_pixels: int) -> TranslationRequest:
    """Decode and check one request; RequestError (a 4xx) for anything the network would refuse."""
    from i2i_cli.data.images import decode_image

    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise RequestError(400, f"unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    mime = negotiate(accept)
    direction = fields.get("direction") or facts.direction
    if direction not in DIRECTIONS:
        raise RequestError(400, f"direction={direction}: choose AtoB or BtoA")
    try:
        image = decode_image(image_bytes, "the uploaded image", max_pixels=max_pixels)
        style = decode_image(style_bytes, "style_ref", max_pixels=max_pixels) if style_bytes else None
    except BadImageError as exc:
        status = 413 if "past the limit" in exc.reason else 400
        reason = str(exc).replace("--max-pixels or I2I_MAX_PIXELS", "`i2i serve --max-pixels`")
        raise RequestError(status, reason.replace("delete or replace it", "send a PNG, JPEG or WebP file")) from None
    request = TranslationRequest(image, mime, direction, fields.get("domain") or None,
                                 _int_field(fields, "seed", 0), style, _int_field(fields, "tile", 0),
                                 _int_field(fields, "overlap", 32))
    try:
        check_request(request, facts)
    except ConfigError as exc:
        raise RequestError(400, str(exc)) from None
    return request


async def read_request(request: Any, facts: ModelFacts, max_pixels: int) -> TranslationRequest:
    """A starlette Request (raw image body, or multipart with `image` and optionally `style_ref` files) as a
    checked TranslationRequest; decoding runs in a thread so the server keeps answering."""
    fields = {k: v for k, v in request.query_params.items()}
    style_bytes: bytes | None = None
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            raise RequestError(400, "multipart upload without a file field named image")
        image_bytes = await upload.read()
        style = form.get("style_ref")
        if style is not None and not isinstance(style, str):
            style_bytes = await style.read()
        fields.update({k: v for k, v in form.items() if isinstance(v, str)})
    else:
        image_bytes = await request.body()
    if not image_bytes:
        raise RequestError(400, "empty request: POST the image's bytes, or a multipart form with a file named image")
    accept = request.headers.get("accept", "")
    return await asyncio.to_thread(build_request, image_bytes, fields, accept, style_bytes, facts, max_pixels)


def encode_result(result: TranslationResult) -> Any:
    """A translated image (with the size of its batch in X-I2I-Batch), or the JSON reason it failed."""
    from fastapi.responses import JSONResponse, Response

    from i2i_cli.data.images import encode_image

    if result.image is None:
        return JSONResponse({"detail": result.error}, status_code=result.status)
    return Response(encode_image(result.image, result.mime), media_type=result.mime,
                    headers={"X-I2I-Batch": str(result.batch)})
