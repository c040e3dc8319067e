"""The web app against a real uvicorn server on a free port: POST /v1/predict (real face
photo, no face, corrupt, too large, wrong type), /health, the OpenAPI schema, the page's
files, and the WebSocket stream (tracks, garbage frames, a client vanishing)."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs ferkit[serve]")
httpx = pytest.importorskip("httpx", reason="needs httpx (ferkit[test])")
import uvicorn  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from ferkit.recognize import Recognizer, demo_image_path  # noqa: E402
from ferkit.serve import create_app  # noqa: E402

MAX_UPLOAD = 300_000  # bytes; grace_hopper.jpg is 61 kB


@contextlib.contextmanager
def live_server(app):
    """Run ``app`` with uvicorn in a background thread on a free port; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws_max_size=app.state.ws_max_size))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def server():
    app = create_app(Recognizer(threads=1), max_upload_bytes=MAX_UPLOAD)
    with live_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def photo() -> bytes:
    return demo_image_path().read_bytes()


def _jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def test_predict_real_face_matches_the_library(server, photo):
    r = httpx.post(f"{server}/v1/predict", files={"file": ("grace_hopper.jpg", photo, "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image"] == "grace_hopper.jpg" and "message" not in body
    [face] = body["faces"]
    expected = Recognizer(threads=1).predict(demo_image_path())[0].to_dict()
    assert face["box"] == expected["box"] and face["label"] == expected["label"]
    assert face["probs"] == pytest.approx(expected["probs"], abs=1e-5)
    assert sum(face["probs"].values()) == pytest.approx(1, abs=1e-4)
    # The same image as a raw body.
    raw = httpx.post(f"{server}/v1/predict", content=photo, headers={"Content-Type": "image/jpeg"})
    assert raw.status_code == 200 and raw.json()["faces"][0]["box"] == expected["box"]


def test_predict_image_without_face(server):
    blank = _jpeg(np.full((240, 320, 3), 128, np.uint8))
    r = httpx.post(f"{server}/v1/predict", files={"file": ("wall.jpg", blank, "image/jpeg")})
    assert r.status_code == 200
    assert r.json() == {"image": "wall.jpg", "faces": [], "message": "no face found"}


def test_predict_corrupt_image_is_422_naming_it(server, photo):
    r = httpx.post(f"{server}/v1/predict", files={"file": ("broken.jpg", b"\xff\xd8\xff" + b"\x00" * 500,
                                                           "image/jpeg")})
    assert r.status_code == 422
    assert "broken.jpg" in r.json()["detail"] and "not an image, or corrupt" in r.json()["detail"]
    empty = httpx.post(f"{server}/v1/predict", content=b"", headers={"Content-Type": "image/png"})
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]


def test_predict_wrong_type_is_415(server):
    r = httpx.post(f"{server}/v1/predict", files={"file": ("notes.txt", b"hello, not a photo", "text/plain")})
    assert r.status_code == 415
    assert "notes.txt" in r.json()["detail"] and "text/plain" in r.json()["detail"]
    r = httpx.post(f"{server}/v1/predict", json={"path": "/etc/passwd"})
    assert r.status_code == 415 and "application/json" in r.json()["detail"]
    r = httpx.post(f"{server}/v1/predict", data={"image": "/etc/passwd"})  # a form without a file
    assert r.status_code in (415, 422)
    r = httpx.post(f"{server}/v1/predict", files={"image": ("x.jpg", b"abc", "image/jpeg")})  # wrong field name
    assert r.status_code == 422 and "'file'" in r.json()["detail"]


def test_predict_too_large_is_413(server, photo):
    big = photo + b"\x00" * (MAX_UPLOAD - len(photo) + 1)  # a valid JPEG with trailing bytes, 1 byte over
    r = httpx.post(f"{server}/v1/predict", content=big, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 413 and f"{MAX_UPLOAD:,}" in r.json()["detail"]
    r = httpx.post(f"{server}/v1/predict", files={"file": ("big.jpg", big, "image/jpeg")})
    assert r.status_code == 413
    # Without Content-Length (chunked): counted as it arrives, refused once past the limit.
    def chunks():
        for _ in range(100):
            yield b"\x00" * 10_000
    r = httpx.post(f"{server}/v1/predict", content=chunks(), headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 413
    # Exactly at the limit is accepted (and decodes: JPEG ignores the trailing bytes).
    ok = httpx.post(f"{server}/v1/predict", content=big[:-1], headers={"Content-Type": "image/jpeg"})
    assert ok.status_code == 200 and len(ok.json()["faces"]) == 1


def test_health_openapi_and_page(server):
    health = httpx.get(f"{server}/health").json()
    assert health["status"] == "ok" and health["max_upload_bytes"] == MAX_UPLOAD
    assert health["class_names"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert health["model"]["file"] == "default.onnx"
    assert health["small_faces"] == {"file": "small-faces.onnx", "below_px": 48, "sharpness_below": 0.173}  # faces under 48 px or blurred
    assert health["align_above"] == 15 and health["refine_below"] == 0  # faces rolled beyond 15 degrees
    # are turned upright, on YuNet's own landmarks (refining them costs a detection per face)
    schema = httpx.get(f"{server}/openapi.json").json()
    assert {"/v1/predict", "/health"} <= set(schema["paths"])
    assert "multipart/form-data" in schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    docs = httpx.get(f"{server}/docs")
    assert docs.status_code == 200 and "/docs/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text
    assert httpx.get(f"{server}/docs/swagger-ui-bundle.js").headers["content-type"].startswith("text/javascript")
    assert httpx.get(f"{server}/docs/swagger-ui.css").status_code == 200
    page = httpx.get(f"{server}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "getUserMedia" in httpx.get(f"{server}/app.js").text
    assert httpx.get(f"{server}/style.css").status_code == 200
    # Nothing else is served from the package or the disk.
    for path in ("/web/index.html", "/../pyproject.toml", "/static/app.js", "/etc/passwd"):
        assert httpx.get(f"{server}{path}").status_code == 404


def _ws_url(server: str) -> str:
    return server.replace("http://", "ws://") + "/v1/stream"


def _frames(n: int) -> list[bytes]:
    """n 320x240 JPEG frames with the real face moving right 2 px a frame."""
    photo = cv2.imread(str(demo_image_path()))
    face = cv2.resize(photo[80:350, 130:400], (130, 130), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(n):
        frame = np.full((240, 320, 3), (90, 110, 100), np.uint8)
        frame[50:180, 40 + 2 * i:170 + 2 * i] = face
        frames.append(_jpeg(frame))
    return frames


def test_stream_tracks_a_face_and_survives_garbage(server):
    frames = _frames(6)
    with connect(_ws_url(server)) as ws:
        answers = []
        for i, frame in enumerate(frames):
            ws.send(frame)
            answers.append(json.loads(ws.recv(timeout=30)))
            if i == 2:  # garbage in the middle: an error on this socket, which stays usable
                ws.send(b"definitely not a jpeg")
                err = json.loads(ws.recv(timeout=30))
                assert err["type"] == "error" and "not an image, or corrupt" in err["detail"]
                ws.send("a text message")
                err = json.loads(ws.recv(timeout=30))
                assert err["type"] == "error" and "binary" in err["detail"]
                ws.send(frame + b"\x00" * MAX_UPLOAD)  # over the limit: refused, connection kept
                err = json.loads(ws.recv(timeout=30))
                assert err["type"] == "error" and f"limit of {MAX_UPLOAD:,} bytes" in err["detail"]
    assert all(a["type"] == "faces" and (a["width"], a["height"]) == (320, 240) for a in answers)
    assert all(len(a["faces"]) == 1 for a in answers)
    assert {a["faces"][0]["track_id"] for a in answers} == {1}
    xs = [a["faces"][0]["box"][0] for a in answers]
    assert xs[-1] > xs[0]  # the box follows the face
    assert all(a["server_ms"] > 0 for a in answers)
    probs = [a["faces"][0]["probs"] for a in answers]
    assert all(sum(p.values()) == pytest.approx(1, abs=1e-4) for p in probs)


def test_stream_detects_on_a_small_copy_and_crops_from_the_full_frame(server):
    """A 640x480 frame (what the page sends): the server detects on a 320 px copy, so the
    box is YuNet's at 320 px mapped back, and classifies the face cropped from the full
    frame, which is what Recognizer(detect_width=320) gives for that frame."""
    photo = cv2.imread(str(demo_image_path()))
    frame = np.full((480, 640, 3), 100, np.uint8)
    face = cv2.resize(photo[80:350, 130:400], (100, 100), interpolation=cv2.INTER_AREA)
    frame[150:250, 300:400] = face  # 100 px here, 50 px in a 320 px frame
    data = _jpeg(frame)
    [expected] = Recognizer(threads=1, detect_width=320).predict(cv2.imdecode(np.frombuffer(data, np.uint8),
                                                                               cv2.IMREAD_COLOR))
    with connect(_ws_url(server)) as ws:
        ws.send(data)
        answer = json.loads(ws.recv(timeout=30))
    assert (answer["width"], answer["height"]) == (640, 480)
    [got] = answer["faces"]
    assert tuple(got["box"]) == expected.box
    assert got["probs"] == pytest.approx(expected.probs, abs=1e-4)  # a new track's first probabilities
    # YuNet's points, found at 320 px and mapped back to the full frame, as the library gives them
    assert (got["landmarks"], got["roll"]) == (expected.to_dict()["landmarks"], expected.to_dict()["roll"])
    assert all(300 <= x <= 400 and 150 <= y <= 250 for x, y in got["landmarks"])


def test_stream_drops_stale_frames_instead_of_queueing(server):
    frames = _frames(1) * 20
    with connect(_ws_url(server)) as ws:
        for frame in frames:  # all at once, faster than they can be processed
            ws.send(frame)
        answers = []
        while not answers or answers[-1]["frame"] < len(frames):
            answers.append(json.loads(ws.recv(timeout=30)))
    assert answers[-1]["frame"] == 20  # the newest frame is always processed
    assert len(answers) + answers[-1]["dropped"] == 20
    assert answers[-1]["dropped"] > 0


def test_stream_client_vanishing_does_not_disturb_another(server):
    frames = _frames(3)
    with connect(_ws_url(server)) as steady:
        steady.send(frames[0])
        assert json.loads(steady.recv(timeout=30))["faces"]
        with contextlib.suppress(Exception), connect(_ws_url(server)) as rude:
            for frame in frames:
                rude.send(frame)
            rude.socket.shutdown(socket.SHUT_RDWR)  # gone without a close handshake, answers unread
            rude.socket.close()
        for frame in frames[1:]:
            steady.send(frame)
            answer = json.loads(steady.recv(timeout=30))
            assert answer["type"] == "faces" and answer["faces"][0]["track_id"] == 1
    assert httpx.get(f"{server}/health").status_code == 200
    with connect(_ws_url(server)) as fresh:  # a new client gets its own tracker: ids from 1
        fresh.send(frames[0])
        assert json.loads(fresh.recv(timeout=30))["faces"][0]["track_id"] == 1


def test_create_app_rejects_bad_settings():
    rec = Recognizer(threads=1)
    with pytest.raises(ValueError, match="max_upload_bytes"):
        create_app(rec, max_upload_bytes=0)
    with pytest.raises(ValueError, match="alpha"):
        create_app(rec, alpha=0)
    with pytest.raises(ValueError, match="stream_detect_width"):
        create_app(rec, stream_detect_width=8)


def test_huge_pixel_counts_are_refused_before_decoding(server):
    from ferkit.serve import MAX_IMAGE_PIXELS, header_size

    big = np.zeros((8000, 8000), np.uint8)  # 64 Mpixel, 62 kB as PNG
    for ext in (".png", ".jpg"):
        ok, buf = cv2.imencode(ext, big)
        assert ok and header_size(buf.tobytes()) == (8000, 8000)
        if len(buf) > MAX_UPLOAD:
            continue
        r = httpx.post(f"{server}/v1/predict", files={"file": (f"bomb{ext}", buf.tobytes(), "image/png")})
        assert r.status_code == 422 and f"{MAX_IMAGE_PIXELS:,} pixels" in r.json()["detail"]
    assert header_size(demo_image_path().read_bytes()) == (512, 600)
    assert header_size(b"GIF89a...") is None


def test_ferkit_serve_command_starts_and_answers(tmp_path):
    import signal
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "ferkit.cli", "serve", "--port", str(port), "--max-upload-mb",
                             "0.5", "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline, health = time.monotonic() + 60, None
        while health is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health").json()
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None, proc.stderr.read() if proc.poll() is not None else "no answer"
        assert health["max_upload_bytes"] == 500_000
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert f"open http://localhost:{port}/" in out
    assert "Traceback" not in err


def test_ferkit_serve_option_errors(tmp_path, capsys, monkeypatch):
    from ferkit.cli import main

    assert main(["serve", "--ssl-certfile", str(tmp_path / "cert.pem")]) == 2
    assert "needs both --ssl-certfile and --ssl-keyfile" in capsys.readouterr().err
    assert main(["serve", "--ssl-certfile", str(tmp_path / "c.pem"), "--ssl-keyfile", str(tmp_path / "k.pem")]) == 2
    assert "c.pem: no such file" in capsys.readouterr().err
    assert main(["serve", "--max-upload-mb", "0"]) == 2
    assert "--max-upload-mb must be > 0" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if the extra were not installed
    assert main(["serve"]) == 2
    assert "pip install 'ferkit[serve]'" in capsys.readouterr().err


def test_stream_refuses_foreign_origins_and_caps_streams(photo):
    from websockets.exceptions import InvalidStatus

    from ferkit.serve import origin_allowed

    assert origin_allowed(None, "127.0.0.1:8000")  # not a browser
    assert origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000")
    assert not origin_allowed("http://127.0.0.1:8001", "127.0.0.1:8000")
    assert not origin_allowed("https://evil.example", "127.0.0.1:8000")
    assert origin_allowed("https://ok.example/", "127.0.0.1:8000", ("https://ok.example",))
    app = create_app(Recognizer(threads=1), max_upload_bytes=MAX_UPLOAD, max_streams=1,
                     allowed_origins=("https://ok.example",))
    with live_server(app) as url:
        host = url.split("//")[1]
        with pytest.raises(InvalidStatus) as refused:
            connect(_ws_url(url), origin="https://evil.example")
        assert refused.value.response.status_code == 403
        with connect(_ws_url(url), origin=f"http://{host}") as first:  # the page's own origin
            first.send(photo)
            assert json.loads(first.recv(timeout=30))["type"] == "faces"
            with connect(_ws_url(url), origin="https://ok.example") as second:  # allowed, but over the cap
                busy = json.loads(second.recv(timeout=30))
                assert busy["type"] == "error" and "busy" in busy["detail"]
                with pytest.raises(Exception):
                    second.recv(timeout=30)
                assert second.close_code == 1013
        deadline = time.monotonic() + 10
        while True:  # the slot is free once the server has seen the first stream end
            with connect(_ws_url(url)) as again:
                again.send(photo)
                answer = json.loads(again.recv(timeout=30))
            if answer["type"] == "faces" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert answer["type"] == "faces", answer
    with pytest.raises(ValueError, match="max_streams"):
        create_app(Recognizer(threads=1), max_streams=0)
