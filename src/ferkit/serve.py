"""The web app: an HTTP API and a browser page over :class:`~ferkit.recognize.Recognizer`.

``create_app()`` builds a FastAPI application (``pip install 'ferkit[serve]'``):

* ``POST /v1/predict``: one uploaded image (a multipart form field ``file``, or the raw
  image as the request body) -> the JSON of ``ferkit predict`` for it.
* ``WS /v1/stream``: live frames. The client sends each frame as a binary message (JPEG or
  PNG bytes); the server answers with JSON holding the tracked faces (see
  :func:`stream_message`). Each connection has its own face tracker
  (:class:`~ferkit.video.StreamRecognizer`: IoU tracks, smoothed probabilities).
* ``GET /health``: status, version, model and class names, upload limit.
* ``GET /``: the page that streams the user's camera to ``/v1/stream`` and draws the
  results, and uploads single photos to ``/v1/predict`` (static files shipped in
  ``ferkit/web/``, no CDN, no build step).
* ``GET /openapi.json`` and ``GET /docs`` (Swagger UI; its script and style come from the
  ``fastapi-offline`` package and are served by this app, so the docs work offline; without
  that package they load from a CDN).

Safety: no request names a file or URL that the server opens (the page's three files are
read once, at start-up, from the package); request bodies are counted as they arrive and
refused with 413 as soon as they pass the limit (``Content-Length`` is checked first); PNG
and JPEG headers announcing more than :data:`MAX_IMAGE_PIXELS` pixels are refused (422)
before decoding;
inputs that are not images get a 4xx JSON error ``{"detail": ...}`` naming the problem.
Decoding and inference run in worker threads, one inference at a time (the model already
uses every core), never on the event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from importlib import resources
from typing import Any

from . import __version__
from .errors import FerkitError, ImageReadError
from .images import decode_image
from .recognize import ImageResult, Recognizer

try:
    from fastapi import FastAPI, Request, WebSocket
    from fastapi.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool
    from starlette.websockets import WebSocketDisconnect, WebSocketState
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise FerkitError("the web app needs FastAPI and uvicorn: pip install 'ferkit[serve]'") from exc

#: Default largest image accepted by POST /v1/predict and per WebSocket frame, in bytes.
DEFAULT_MAX_UPLOAD_BYTES = 10_000_000

#: Largest image accepted, in pixels (width * height), checked in PNG and JPEG headers before
#: decoding: a small, highly compressed file must not make the server allocate gigabytes.
MAX_IMAGE_PIXELS = 50_000_000

#: Bytes a multipart body may hold beyond the image itself (boundaries, part headers).
FORM_OVERHEAD_BYTES = 16 * 1024

#: Media types (besides ``image/*``) accepted as an image upload; the bytes decide.
_GENERIC_TYPES = ("application/octet-stream", "")

#: The page's files, served from fixed routes: route -> (file in ferkit/web, media type).
_PAGE_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
               "/app.js": ("app.js", "text/javascript; charset=utf-8"),
               "/style.css": ("style.css", "text/css; charset=utf-8")}


class BodyTooLarge(Exception):
    """A request body passed the app's limit (answered with 413)."""

    def __init__(self, limit: int):
        super().__init__(f"request body larger than the limit of {limit:,} bytes")
        self.limit = limit


class _BodyLimit:
    """ASGI middleware: refuse HTTP request bodies above ``limit`` bytes.

    A ``Content-Length`` above the limit is answered with 413 before the body is read;
    otherwise the body's chunks are counted as the app reads them, and
    :class:`BodyTooLarge` is raised (answered with 413) the moment the count passes the
    limit, so no handler ever holds more than ``limit`` bytes of a body.
    """

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                return await JSONResponse({"detail": f"invalid Content-Length header {length[:40]!r}"},
                                          400)(scope, receive, send)
            if n > self.limit:
                return await JSONResponse({"detail": f"request body of {n:,} bytes is larger than the "
                                                     f"limit of {self.limit:,} bytes"},
                                          413, headers={"Connection": "close"})(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        return await self.app(scope, counted, send)


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) in pixels from a PNG or JPEG header, without decoding; ``None`` for
    other formats or a header that cannot be read (the decoder then decides)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):  # JPEG markers up to the first start-of-frame (SOF0-SOF15 but DHT, JPG, DAC)
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def check_pixels(data: bytes, name: str) -> None:
    """Raise :class:`~ferkit.errors.ImageReadError` when a PNG/JPEG header announces more than
    :data:`MAX_IMAGE_PIXELS` pixels."""
    size = header_size(data)
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise ImageReadError(f"{name}: {size[0]}x{size[1]} pixels is larger than the limit of "
                             f"{MAX_IMAGE_PIXELS:,} pixels")


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def stream_message(frame: int, width: int, height: int, faces: list, server_ms: float, dropped: int) -> dict:
    """The JSON answer to one WebSocket frame.

    Keys: ``type`` (``"faces"``), ``frame`` (1-based count of the frames this connection
    has sent, including dropped ones), ``width``/``height`` (the frame's pixels: boxes are
    in these), ``faces`` (per face: ``track_id``, ``box`` (x, y, w, h), ``label``, ``score``,
    ``probs`` (smoothed over the track), ``detector_confidence``, ``detected``),
    ``server_ms`` (decode + inference time of this frame, ms), ``dropped`` (frames skipped
    so far because a newer one had arrived).
    """
    return {"type": "faces", "frame": frame, "width": width, "height": height,
            "faces": [f.to_dict() for f in faces], "server_ms": round(server_ms, 2), "dropped": dropped}


class _Latest:
    """A one-slot mailbox: ``put`` replaces what has not been taken yet (counted as
    dropped), so the consumer always gets the newest message and no backlog builds up."""

    def __init__(self):
        self.item: Any = None
        self.closed = False
        self.dropped = 0
        self.received = 0
        self._event = asyncio.Event()

    def put(self, item) -> None:
        if self.item is not None:
            self.dropped += 1
        self.item = item
        self.received += 1
        self._event.set()

    def close(self) -> None:
        self.closed = True
        self._event.set()

    async def get(self):
        """The newest ``(index, message)``; ``None`` once closed."""
        while self.item is None and not self.closed:
            self._event.clear()
            await self._event.wait()
        if self.item is None:
            return None
        item, self.item = self.item, None
        return item


def origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...] = ()) -> bool:
    """Whether a WebSocket handshake's ``Origin`` may connect (protection against
    cross-site WebSocket hijacking, RFC 6455 section 10.2: browsers always send ``Origin``,
    other clients need not).

    Args:
        origin: the ``Origin`` header (``scheme://host[:port]``), ``None`` when absent.
        host: the ``Host`` header the client connected to.
        allowed: more origins to let in, exactly as browsers send them
            (``https://example.org:8443``); ``"*"`` lets every origin in.

    Returns:
        True for no ``Origin`` (not a browser), the page's own origin (same host and port
        as ``Host``), or an allowed one.
    """
    from urllib.parse import urlsplit

    if origin is None or "*" in allowed or origin.rstrip("/") in {a.rstrip("/") for a in allowed}:
        return True
    return bool(host) and urlsplit(origin).netloc.lower() == host.lower()


def create_app(recognizer: Recognizer | None = None, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               *, alpha: float = 0.3, max_missed: int = 5, max_streams: int = 8,
               allowed_origins: tuple[str, ...] = (), stream_detect_width: int | None = 320) -> FastAPI:
    """The ferkit web app (FastAPI; run it with uvicorn, or ``ferkit serve``).

    Args:
        recognizer: detector + classifier shared by every request and connection;
            ``None`` for ``Recognizer()`` (bundled model, default detector).
        max_upload_bytes: largest image, in bytes, for ``POST /v1/predict`` (a multipart
            body may add :data:`FORM_OVERHEAD_BYTES`) and for one WebSocket frame; bigger
            ones get 413 (HTTP) or an error message (WebSocket).
        alpha: per-frame smoothing weight of each WebSocket track's probabilities, in
            (0, 1] (see :class:`~ferkit.video.StreamRecognizer`).
        max_missed: frames a WebSocket track may go undetected before it ends.
        max_streams: WebSocket streams open at once; one more gets an error message and
            is closed with code 1013 (try again later). Every stream shares the cores.
        allowed_origins: browser origins besides the page's own that may open a stream
            (see :func:`origin_allowed`); others are refused with HTTP 403 at the handshake.
        stream_detect_width: WebSocket frames wider than this many pixels are shrunk to it
            for the detector only; faces are cropped from the full frame (the page sends
            frames up to 640 px wide). ``None``: detect on the full frame. Ignored when
            ``recognizer`` has its own ``detect_width``. Detection at 320 px keeps the
            stream's speed; cropping from 640 px gives the classifier faces twice as
            wide, and small faces lose accuracy (``benchmarks/face_size.py``: 63.9% of val
            at 24 px against 72.0% at 48 px for the bundled ``default``).

    Returns:
        The application; ``app.state.recognizer``, ``app.state.max_upload_bytes`` and
        ``app.state.ws_max_size`` (the largest WebSocket message to let the server pass on,
        for uvicorn's ``ws_max_size``) hold the settings.

    Raises:
        ValueError: ``max_upload_bytes`` or ``max_streams`` < 1, ``stream_detect_width`` <
            16, or ``alpha`` / ``max_missed`` out of range.
    """
    import copy

    from .video import StreamRecognizer

    if max_upload_bytes < 1:
        raise ValueError(f"max_upload_bytes must be >= 1, got {max_upload_bytes}")
    if max_streams < 1:
        raise ValueError(f"max_streams must be >= 1, got {max_streams}")
    allowed_origins = tuple(allowed_origins)
    open_streams = [0]  # changed only on the event loop's thread
    if stream_detect_width is not None and stream_detect_width < 16:
        raise ValueError(f"stream_detect_width must be >= 16 pixels or None, got {stream_detect_width}")
    rec = recognizer if recognizer is not None else Recognizer()
    stream_rec = copy.copy(rec)  # the same classifier and detector; detects on a smaller copy
    if stream_rec.detect_width is None:
        stream_rec.detect_width = stream_detect_width
    StreamRecognizer(stream_rec, alpha=alpha, max_missed=max_missed)  # bad settings fail here, not per connection
    lock = threading.Lock()  # one inference at a time: ONNX Runtime already uses every core
    page = {route: (resources.files("ferkit").joinpath("web", name).read_bytes(), media)
            for route, (name, media) in _PAGE_FILES.items()}
    model_meta = rec.classifier.meta

    app = FastAPI(title="ferkit", version=__version__, docs_url=None, redoc_url=None,
                  description="Facial expression recognition: the emotions of every face in an image "
                              "or a live stream of frames. The page at / streams your camera.")
    app.state.recognizer, app.state.max_upload_bytes = rec, max_upload_bytes
    # WebSocket messages up to twice the limit reach the app, which answers those above the
    # limit with an error message; larger ones make the server close the connection (1009).
    app.state.ws_max_size = 2 * max_upload_bytes + 1024
    app.add_middleware(_BodyLimit, limit=max_upload_bytes + FORM_OVERHEAD_BYTES)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge):
        return JSONResponse({"detail": f"upload larger than the limit of {max_upload_bytes:,} bytes"}, 413,
                            headers={"Connection": "close"})

    def _recognize(data: bytes, name: str):
        check_pixels(data, name)
        image = decode_image(data, name=name)
        with lock:
            return rec.predict(image)

    for route, (body, media) in page.items():
        def serve_file(body=body, media=media) -> Response:
            return Response(body, media_type=media, headers={"Cache-Control": "no-cache"})
        app.add_api_route(route, serve_file, methods=["GET"], include_in_schema=False)

    _add_docs(app)

    @app.get("/health", summary="Status, model and limits")
    async def health() -> dict:
        """Status, ferkit version, the model (name, file, class names), the small-face
        network that faces under ``below_px`` or of a sharpness under ``sharpness_below``
        go to (``null``: none), the eye roll in degrees beyond which a face is turned
        upright (``null``: never), the face side in pixels under which its landmarks are
        refined first (0: never) and the upload limit."""
        return {"status": "ok", "version": __version__,
                "model": {"name": model_meta.get("model"), "file": rec.classifier.path.name,
                          "input_size": rec.classifier.preprocessing.input_size},
                "small_faces": (None if rec.small_classifier is None else
                                {"file": rec.small_classifier.path.name, "below_px": rec.small_below,
                                 "sharpness_below": rec.sharpness_below}),
                "align_above": rec.align_above, "refine_below": rec.refine_below,
                "class_names": list(rec.class_names), "detector": type(rec.detector).__name__,
                "max_upload_bytes": max_upload_bytes}

    upload_doc = {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary",
                     "description": "the image (JPEG, PNG, BMP, TIFF, WebP, ...)"}}}},
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}
    error_doc = {"content": {"application/json": {"example": {"detail": "what is wrong"}}}}

    @app.post("/v1/predict", summary="Emotions of every face in one image", openapi_extra=upload_doc,
              responses={413: {"description": "image larger than the limit", **error_doc},
                         415: {"description": "not an image type", **error_doc},
                         422: {"description": "not an image, or corrupt", **error_doc}})
    async def predict(request: Request):
        """The image as a multipart form field ``file`` or as the raw body (``image/*`` or
        ``application/octet-stream``). Answers the JSON of ``ferkit predict`` for one
        image: ``{"image": name, "faces": [{"box": [x, y, w, h], "label", "score", "probs",
        "detector_confidence"}, ...]}``, largest face first; ``"faces": []`` and
        ``"message": "no face found"`` when there is none."""
        mime = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if mime == "multipart/form-data":
            async with request.form(max_files=1, max_fields=8) as form:
                upload = form.get("file")
                if upload is None or isinstance(upload, str):
                    return _error(422, "expected the image as a file in the form field 'file'")
                name = (upload.filename or "upload")[:200]
                part = (upload.content_type or "").split(";")[0].strip().lower()
                data = await upload.read()
        elif mime.startswith("image/") or mime in _GENERIC_TYPES:
            name, part = "upload", mime
            data = b"".join([chunk async for chunk in request.stream()])
        else:
            return _error(415, f"expected multipart/form-data with a 'file' field, or an image body "
                               f"(image/*), got Content-Type {mime!r}")
        if not (part.startswith("image/") or part in _GENERIC_TYPES):
            return _error(415, f"{name}: expected an image (image/jpeg, image/png, ...), got {part}")
        if len(data) > max_upload_bytes:
            return _error(413, f"{name}: {len(data):,} bytes is larger than the limit of "
                               f"{max_upload_bytes:,} bytes")
        try:
            faces = await run_in_threadpool(_recognize, data, name)
        except ImageReadError as exc:
            return _error(422, str(exc))
        return ImageResult(name, faces).to_dict()

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket):
        """Live frames: send JPEG/PNG bytes as binary messages, get one JSON answer per frame
        processed (:func:`stream_message`), or ``{"type": "error", "detail": ...}`` for a
        frame that cannot be used (the connection stays open). When frames arrive faster
        than they are processed, only the newest waiting one is processed. Browsers may
        connect only from the page's own origin (or an allowed one); at most
        ``max_streams`` streams are open at once."""
        if not origin_allowed(websocket.headers.get("origin"), websocket.headers.get("host"), allowed_origins):
            await websocket.close(code=1008)  # before accept: the handshake gets HTTP 403
            return
        await websocket.accept()
        if open_streams[0] >= max_streams:
            try:
                await websocket.send_json({"type": "error", "detail": f"server busy: {max_streams} streams "
                                                                      "are open (the limit); try again later"})
                await websocket.close(code=1013)
            except Exception:  # the client already left
                pass
            return
        tracker = StreamRecognizer(stream_rec, alpha=alpha, max_missed=max_missed)
        mailbox = _Latest()

        async def receive_loop():
            try:
                while True:
                    message = await websocket.receive()
                    if message["type"] == "websocket.disconnect":
                        break
                    mailbox.put((mailbox.received + 1, message))
            except Exception:  # a broken connection ends this client only
                pass
            finally:
                mailbox.close()

        def process(data: bytes, index: int):
            start = time.perf_counter()
            check_pixels(data, f"frame {index}")
            image = decode_image(data, name=f"frame {index}")
            with lock:
                faces = tracker.process(image)
            return image.shape[1], image.shape[0], faces, (time.perf_counter() - start) * 1000

        open_streams[0] += 1
        receiver = asyncio.create_task(receive_loop())
        try:
            while (item := await mailbox.get()) is not None:
                index, message = item
                data = message.get("bytes")
                if data is None:
                    answer = {"type": "error", "frame": index,
                              "detail": "expected a binary message holding a JPEG or PNG frame, got text"}
                elif len(data) > max_upload_bytes:
                    answer = {"type": "error", "frame": index,
                              "detail": f"frame {index}: {len(data):,} bytes is larger than the limit of "
                                        f"{max_upload_bytes:,} bytes"}
                else:
                    try:
                        width, height, faces, ms = await run_in_threadpool(process, data, index)
                        answer = stream_message(index, width, height, faces, ms, mailbox.dropped)
                    except ImageReadError as exc:
                        answer = {"type": "error", "frame": index, "detail": str(exc)}
                await websocket.send_json(answer)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client went away mid-answer; nothing else is affected
        finally:
            open_streams[0] -= 1
            receiver.cancel()
            if websocket.client_state == WebSocketState.CONNECTED:
                try:
                    await websocket.close()
                except Exception:
                    pass

    return app


def _add_docs(app: FastAPI) -> None:
    """``GET /docs``: Swagger UI, with its files from ``fastapi-offline`` when installed
    (served from fixed routes, read on first use), else from FastAPI's default CDN."""
    from fastapi.openapi.docs import get_swagger_ui_html

    try:
        import fastapi_offline
    except ImportError:
        assets = None
    else:
        folder = resources.files(fastapi_offline) / "static"
        assets = {"swagger-ui-bundle.js": (folder / "swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
                  "swagger-ui.css": (folder / "swagger-ui.css", "text/css; charset=utf-8"),
                  "favicon.png": (folder / "favicon.png", "image/png")}
        if not all(path.is_file() for path, _ in assets.values()):
            assets = None
    if assets is None:
        @app.get("/docs", include_in_schema=False)
        async def docs_cdn():
            return get_swagger_ui_html(openapi_url=app.openapi_url, title="ferkit API")
        return

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="ferkit API",
                                   swagger_js_url="/docs/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/swagger-ui.css", swagger_favicon_url="/docs/favicon.png")

    cache: dict[str, bytes] = {}
    for name, (path, media) in assets.items():
        def asset(name=name, path=path, media=media) -> Response:
            if name not in cache:
                cache[name] = path.read_bytes()
            return Response(cache[name], media_type=media, headers={"Cache-Control": "max-age=86400"})
        app.add_api_route(f"/docs/{name}", asset, methods=["GET"], include_in_schema=False)


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, ssl_certfile: str | None = None,
          ssl_keyfile: str | None = None, log_level: str = "info") -> None:
    """Run ``app`` with uvicorn until Ctrl-C.

    Args:
        app: from :func:`create_app`.
        host: address to listen on (``0.0.0.0``: every interface, e.g. for a phone on the LAN).
        port: TCP port.
        ssl_certfile, ssl_keyfile: PEM certificate and key for https (browsers give the
            camera only to https pages and to localhost).
        log_level: uvicorn's log level.
    """
    import uvicorn

    uvicorn.run(app, host=host, port=port, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,
                ws_max_size=app.state.ws_max_size, log_level=log_level)
