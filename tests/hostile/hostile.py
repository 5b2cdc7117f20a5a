"""Hostile clients against a real `avemo serve` on 127.0.0.1 (docs/security.md).

    hostile.py --program AVEMO --work DIR CASE

CASE is one of: model inputs protocol slow burst crash nested bombs slowloris rfc utf8 cli.  `model` trains the small
audio-visual model the other cases serve (tests/train/smoke-av.ini, 2 epochs, on the six
CREMA-D fixtures) into DIR; every other case starts its own server in a fresh directory,
sends what a hostile client would, and checks that
  - each request gets its own clear error (status and JSON error code) or is cut off,
  - the server stays up and the next legitimate prediction still succeeds,
  - nothing is written outside the history database (the server's directory holds only the
    database files afterwards, and no ../ file name escapes),
  - every error body is UTF-8 JSON with an error code and message, except the pages that
    libmicrohttpd answers itself (MHD_PAGES below, docs/security.md says why).
Standard library only; run with Debian's /usr/bin/python3.
"""
import argparse
import json
import os
import random
import select
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIP = os.path.join(SOURCE, "tests", "data", "cremad", "1001_DFA_ANG_XX.flv")
FACE_JPEG = os.path.join(SOURCE, "tests", "data", "faces", "happy_PublicTest_10130075.jpg")
TIMEOUT = 120
failures = []
# libmicrohttpd 0.9.75 answers these itself, before avemo sees the request, with fixed HTML
# compiled into the library (no option replaces them): status -> the page's <title>.
MHD_PAGES = {400: (b"Request malformed", b"&quot;Host:&quot; header required"),
             413: (b"Request content too large",), 414: (b"Request too big",), 431: (b"Request too big",),
             500: (b"Internal server error",), 505: (b"Requested HTTP version is not supported",)}
mhd_pages_seen = []
server_dirs = []  # removed at the end when every check passed


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)


class Server:
    """`avemo serve` on a free port, in its own empty directory."""

    def __init__(self, args, extra=(), env=None, upload_mb=2):
        self.dir = tempfile.mkdtemp(prefix="avemo-hostile-", dir=args.work)
        server_dirs.append(self.dir)
        self.db = os.path.join(self.dir, "history.sqlite")
        self.log = open(os.path.join(args.work, "hostile-server.log"), "ab")
        cmd = [args.program, "serve", "--host", "127.0.0.1", "--port", "0", "--model", args.model,
               "--db", self.db, "--max-upload-mb", str(upload_mb), *extra]
        self.cmd, self.env = cmd, env
        self.start()

    def start(self):
        self.proc = subprocess.Popen(self.cmd, cwd=self.dir, stdout=subprocess.PIPE, stderr=self.log,
                                     env=self.env)
        line = self.proc.stdout.readline().decode(errors="replace")
        marker = "http://127.0.0.1:"
        if marker not in line:
            self.proc.kill()
            raise SystemExit("avemo serve did not start: %r (see hostile-server.log)" % line)
        self.port = int(line.split(marker)[1].split("/")[0])

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM; a clean exit (status 0) is part of every case."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        check(rc == 0, "server exits cleanly on SIGTERM (status %s)" % rc)

    def kill9(self):
        self.proc.kill()
        self.proc.wait(timeout=30)

    def leftovers(self):
        """Files in the server's directory other than the history database."""
        allowed = {"history.sqlite", "history.sqlite-wal", "history.sqlite-shm", "history.sqlite-journal"}
        return sorted(set(os.listdir(self.dir)) - allowed)


def request(port, method, path, body=None, headers=None, timeout=TIMEOUT):
    """(status, parsed JSON or None, raw body); status 0 when the connection broke without an
    answer.  A raw socket, so that an answer the server sends before it has read the whole
    body (413 on a declared length, 401) is read as curl reads it, not lost to a broken pipe."""
    body = body or b""
    head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" % (method, path)
    for name, value in (headers or {}).items():
        head += "%s: %s\r\n" % (name, value)
    if body or method == "POST":
        head += "Content-Length: %d\r\n" % len(body)
    data = head.encode("utf-8", "surrogateescape") + b"\r\n" + body
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    chunks = []
    try:
        sent = 0
        while sent < len(data):
            readable, _, _ = select.select([s], [], [], 0)
            if readable:
                break  # the server answers early: stop sending, read the answer
            try:
                sent += s.send(data[sent:sent + 65536])
            except OSError:
                break
        while True:
            try:
                chunk = s.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        s.close()
    answer = b"".join(chunks)
    header, _, raw = answer.partition(b"\r\n\r\n")
    status = status_of(header)
    if b"transfer-encoding: chunked" in header.lower():
        raw = dechunk(raw)
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if status >= 400 and method != "HEAD":
        check_error_body(status, raw, "%s %s" % (method, path[:60]))
    return status, parsed, raw


def mhd_page(status, raw):
    # (for a bad Content-Length, libmicrohttpd 0.9.75 sends its status line and headers twice)
    return b"<html><head><title>" in raw and any(b"<title>" + t + b"</title>" in raw for t in MHD_PAGES.get(status, ()))


def check_error_body(status, raw, what):
    """An error body is UTF-8 JSON {"error":{"code","message"}}, or one of libmicrohttpd's pages."""
    if mhd_page(status, raw):
        mhd_pages_seen.append(status)
        return True
    try:
        error = json.loads(raw.decode("utf-8", "strict"))["error"]
        ok = isinstance(error["code"], str) and isinstance(error["message"], str) and error["message"] != ""
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        check(False, "the %d answer to %r is UTF-8 JSON with a code and message (got %r)" % (status, what, raw[:120]))
    return ok


def dechunk(raw):
    out = b""
    while raw:
        size_line, _, rest = raw.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += rest[:size]
        raw = rest[size + 2:]
    return out


def multipart(data, filename="clip.flv", boundary="avemohostileboundary", field="file"):
    head = ('--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\n'
            'Content-Type: application/octet-stream\r\n\r\n' % (boundary, field, filename)).encode("utf-8",
                                                                                                 "surrogateescape")
    body = head + data + ("\r\n--%s--\r\n" % boundary).encode()
    return body, {"Content-Type": "multipart/form-data; boundary=" + boundary}


def predict(port, data, filename="clip.flv", query="", headers=None):
    body, h = multipart(data, filename)
    h.update(headers or {})
    return request(port, "POST", "/v1/predict" + query, body, h)


def error_code(parsed):
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        return parsed["error"].get("code"), parsed["error"].get("message")
    return None, None


def expect_error(port, what, status, codes, data=None, filename="clip.flv", reply=None):
    """The request is refused with this status and one of these error codes, and a message."""
    got_status, parsed, raw = reply if reply else predict(port, data, filename)
    code, message = error_code(parsed)
    check(got_status == status and code in codes and bool(message),
          "%s -> %d %s (got %d %s: %s)" % (what, status, "/".join(codes), got_status, code, raw[:160]))


def legit(server, what):
    status, parsed, raw = predict(server.port, open(CLIP, "rb").read(), "1001_DFA_ANG_XX.flv")
    check(server.alive() and status == 200 and isinstance(parsed, dict) and "label" in parsed,
          "legitimate prediction after %s -> 200 (got %d %s)" % (what, status, raw[:120]))
    return parsed


def ffmpeg(args, out):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args, out], check=True)
    return open(out, "rb").read()


def raw_exchange(port, payload, read_timeout=10, shutdown=True):
    """Send bytes on a raw socket; return what the server answered (b'' when it closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    try:
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):  # closed while we sent: read its answer
            pass
        if shutdown:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:  # the server answered and closed first (a 100 KB URL): read what it sent
                pass
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        s.close()


def status_of(answer):
    try:
        return int(answer.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


# ---- cases ----

def case_model(args):
    out = os.path.join(args.work, "hostile.avm")
    subprocess.run([args.program, "train", os.path.join(SOURCE, "tests", "train", "smoke-av.ini"), "--data",
                    os.path.join(SOURCE, "tests", "data", "cremad"), "--out", out, "--set", "train.epochs=2",
                    "--quiet"], check=True, cwd=args.work)
    check(os.path.getsize(out) > 0, "model trained: " + out)


def case_inputs(args):
    """Hostile uploads: every one refused with its own status and code."""
    srv = Server(args, upload_mb=8)  # room for the 10-minute clip, which the duration cap must stop
    port = srv.port
    clip = open(CLIP, "rb").read()
    tmp = tempfile.mkdtemp(prefix="avemo-hostile-media-", dir=args.work)

    status, parsed, raw = request(port, "POST", "/v1/predict", b"", {"Content-Type": "application/octet-stream"})
    expect_error(port, "zero-byte raw body", 400, ["empty"], reply=(status, parsed, raw))
    expect_error(port, "zero-byte multipart file", 400, ["empty"], b"")
    rng = random.Random(8)
    for i in range(4):
        expect_error(port, "random bytes #%d" % i, 415, ["unsupported"],
                     bytes(rng.getrandbits(8) for _ in range(4096)), "noise.flv")
    png = ffmpeg(["-f", "lavfi", "-i", "testsrc=s=64x48", "-frames:v", "1"], os.path.join(tmp, "still.png"))
    # Read by its content, not its name: one picture, classified in face mode as a JPEG is.
    status, parsed, raw = predict(port, png, "still.flv")
    check(status == 200 and isinstance(parsed, dict) and parsed.get("frames_sampled") == 1
          and parsed.get("mode") == "face",
          "a PNG named .flv -> 200, one picture in face mode (got %d %s)" % (status, raw[:160]))
    # A screenshot is larger than the video frames allowed: a picture has its own size limits.
    shot = ffmpeg(["-f", "lavfi", "-i", "testsrc=s=2560x1440", "-frames:v", "1"], os.path.join(tmp, "shot.png"))
    status, parsed, raw = predict(port, shot, "shot.png")
    check(status == 200 and isinstance(parsed, dict) and parsed.get("frames_sampled") == 1,
          "a 2560x1440 PNG screenshot -> 200, one picture (got %d %s)" % (status, raw[:160]))
    expect_error(port, "a truncated .flv (100 KB of 266 KB)", 415, ["corrupt"], clip[:100000])
    expect_error(port, "a .flv cut inside its header", 415, ["corrupt", "unsupported"], clip[:200])
    flipped = bytearray(clip)
    for pos in random.Random(3).sample(range(13, len(flipped)), 200):
        flipped[pos] ^= 1 << (pos % 8)
    status, parsed, raw = predict(port, bytes(flipped))
    code, message = error_code(parsed)
    check(srv.alive() and (status == 200 or (400 <= status < 500 and code and message)),
          "a bit-flipped .flv -> 200 or a 4xx with a code (got %d %s)" % (status, code))
    long_clip = ffmpeg(["-f", "lavfi", "-i", "testsrc=s=64x48:r=1:d=600", "-f", "lavfi", "-i",
                        "sine=r=8000:d=600", "-c:v", "flv1", "-c:a", "adpcm_swf", "-ar", "11025", "-shortest"],
                       os.path.join(tmp, "ten_minutes.flv"))
    expect_error(port, "a 10-minute clip (%d KB, over the 300 s cap)" % (len(long_clip) // 1024), 413,
                 ["too_long"], long_clip)
    uhd = ffmpeg(["-f", "lavfi", "-i", "testsrc=s=3840x2160:r=1:d=1", "-f", "lavfi", "-i", "sine=r=8000:d=1",
                  "-frames:v", "1", "-c:v", "mpeg4", "-q:v", "31", "-c:a", "aac", "-b:a", "16k", "-shortest"],
                 os.path.join(tmp, "uhd.mp4"))
    expect_error(port, "a 3840x2160 video (over the frame cap)", 413, ["too_large"], uhd, "uhd.mp4")
    big = clip * 33  # 8.8 MB, the server runs with --max-upload-mb 8
    expect_error(port, "an 8.8 MB upload over the 8 MiB cap", 413, ["too_large", "upload_too_large"], big)
    status, parsed, raw = request(port, "POST", "/v1/predict", big, {"Content-Type": "video/x-flv"})
    expect_error(port, "an 8.8 MB raw body over the cap", 413, ["too_large", "upload_too_large"],
                 reply=(status, parsed, raw))

    # A file name that tries to climb out and carries control characters.
    evil = "../../hostile_escape_%d\x01\x1b[31m\r\n.flv" % os.getpid()
    status, parsed, raw = predict(port, clip, evil)
    name = parsed.get("file", "") if isinstance(parsed, dict) else ""
    check(status == 200 and not any(ord(c) < 32 for c in name),
          "file name with ../ and control characters -> 200, no control characters echoed (%d %r)" % (status, name))
    status, hist, raw = request(port, "GET", "/v1/history?limit=50")
    names = [item.get("file_name", "") for item in hist.get("items", [])] if isinstance(hist, dict) else []
    check(status == 200 and names and all(not any(ord(c) < 32 for c in n) for n in names),
          "history file names hold no control characters: %r" % names[:3])
    escapes = [os.path.join(d, f) for d in (srv.dir, os.path.dirname(srv.dir), os.path.dirname(os.path.dirname(srv.dir)))
               for f in os.listdir(d) if f.startswith("hostile_escape")]
    check(not escapes, "no file written by the ../ name: %r" % escapes)

    legit(srv, "the hostile uploads")
    srv.stop()
    check(not srv.leftovers(), "nothing written beside the history database: %r" % srv.leftovers())
    shutil.rmtree(tmp, ignore_errors=True)


def case_protocol(args):
    """Malformed HTTP: multipart without a boundary, a huge part header, lying lengths, keys."""
    srv = Server(args)
    port = srv.port
    clip = open(CLIP, "rb").read()
    body, _ = multipart(clip)
    expect_error(port, "multipart without a boundary", 400, ["bad_request"],
                 reply=request(port, "POST", "/v1/predict", body, {"Content-Type": "multipart/form-data"}))
    expect_error(port, "multipart with a boundary the body does not use", 400, ["bad_request"],
                 reply=request(port, "POST", "/v1/predict", body,
                               {"Content-Type": "multipart/form-data; boundary=somethingelse"}))
    huge = ('--hostileb\r\nContent-Disposition: form-data; name="file"; filename="%s.flv"\r\n\r\n'
            % ("A" * 1000000)).encode()
    huge += clip[:1000] + b"\r\n--hostileb--\r\n"
    status, parsed, raw = request(port, "POST", "/v1/predict", huge,
                                  {"Content-Type": "multipart/form-data; boundary=hostileb"})
    code, message = error_code(parsed)
    check(status in (400, 413) and code and message,
          "a 1 MB part header -> 400/413 with a code (got %d %s)" % (status, raw[:160]))

    # Content-Length larger than the body, then the client stops sending: the server must
    # not hang forever on it nor crash; other clients are served meanwhile.
    head = ("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: video/x-flv\r\n"
            "Content-Length: 1000000\r\nConnection: close\r\n\r\n").encode()
    answer = raw_exchange(port, head + clip[:5000])
    check(srv.alive() and (answer == b"" or 400 <= status_of(answer) < 500),
          "Content-Length larger than the body -> closed or 4xx (got %r)" % answer[:60])
    # Content-Length smaller than the body: the rest is a garbage second request.
    head = ("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: video/x-flv\r\n"
            "Content-Length: 100\r\nConnection: close\r\n\r\n").encode()
    # The server answers after the first 100 bytes and closes; the bytes it never read make the
    # kernel reset the connection, which may swallow the answer: closed or 4xx are both right.
    answer = raw_exchange(port, head + clip[:5000])
    check(srv.alive() and (answer == b"" or 400 <= status_of(answer) < 500),
          "Content-Length smaller than the body -> closed or 4xx (got %r)" % answer[:60])
    # A declared length over the cap is refused before the body is read.
    head = ("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: video/x-flv\r\n"
            "Content-Length: 99999999999\r\nConnection: close\r\n\r\n").encode()
    answer = raw_exchange(port, head)
    check(status_of(answer) == 413, "Content-Length of 100 GB -> 413 at once (got %r)" % answer[:60])
    # Past 2^63 (a signed parse fails there) and past 2^64: still too large, not waited for.
    for huge in ("9223372036854775808", "18446744073709551615", "99999999999999999999999"):
        head = ("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: video/x-flv\r\n"
                "Content-Length: %s\r\nConnection: close\r\n\r\n" % huge).encode()
        answer = raw_exchange(port, head)
        check(status_of(answer) == 413, "Content-Length of %s -> 413 at once (got %r)" % (huge, answer[:60]))
    answer = raw_exchange(port, b"GARBAGE \x00\x01\x02 HTTP/9.9\r\n\r\n")
    check(srv.alive() and (answer == b"" or 400 <= status_of(answer) < 500 or status_of(answer) == 505),
          "a request line of garbage -> closed, 4xx or 505 (got %r)" % answer[:60])
    legit(srv, "the malformed requests")
    srv.stop()
    check(not srv.leftovers(), "nothing written beside the history database: %r" % srv.leftovers())

    env = dict(os.environ, AVEMO_API_KEY="hostile-secret-key")
    keyed = Server(args, env=env)
    for what, headers in [("no key", {}), ("a wrong key", {"Authorization": "Bearer wrong"}),
                          ("a wrong X-API-Key", {"X-API-Key": "hostile-secret-keyX"}),
                          ("a key prefix", {"Authorization": "Bearer hostile-secret"})]:
        status, parsed, raw = predict(keyed.port, clip, headers=headers)
        code, message = error_code(parsed)
        check(status == 401 and code and message, "%s -> 401 (got %d %s)" % (what, status, raw[:100]))
    status, parsed, raw = predict(keyed.port, clip, headers={"Authorization": "Bearer hostile-secret-key"})
    check(status == 200, "the right key -> 200 (got %d)" % status)
    keyed.stop()


def case_slow(args):
    """A client sending one byte a second does not hold the server up."""
    srv = Server(args, ["--timeout", "30"])
    port = srv.port
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: video/x-flv\r\nContent-Length: 100\r\n\r\n")
    results = {}

    def others():
        results["health"] = request(port, "GET", "/healthz")[0]
        results["predict"] = predict(port, open(CLIP, "rb").read())[0]

    t = threading.Thread(target=others)
    t.start()
    sent, closed = 0, False
    for _ in range(5):
        try:
            s.sendall(b"x")
            sent += 1
        except OSError:
            closed = True
            break
        time.sleep(1)
    t.join(TIMEOUT)
    check(results.get("health") == 200 and results.get("predict") == 200,
          "other requests served while a client sends 1 byte/s (%r)" % results)
    s.settimeout(5)
    try:
        s.shutdown(socket.SHUT_WR)
        answer = s.recv(4096)
    except OSError:
        answer = b""
    s.close()
    check(srv.alive() and (closed or answer == b"" or 400 <= status_of(answer) < 500),
          "the slow client (%d bytes of 100) gets closed or a 4xx (got %r)" % (sent, answer[:60]))
    legit(srv, "the slow client")
    srv.stop()
    check(not srv.leftovers(), "nothing written beside the history database: %r" % srv.leftovers())


def rss_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(pid):
    """Make VmHWM start again from the current RSS (Linux >= 4.0); False when not allowed."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def png_bomb(side=16000):
    """A 746 KB PNG that declares side x side RGB pixels of zeros (the issue's reproducer)."""
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    z = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_RLE)  # the same 746 KB, faster to make
    row = b"\0" * (3 * side + 1)
    data = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def case_bombs(args):
    """Decompression bombs: refused with 413 before the decoder allocates the frame."""
    srv = Server(args, upload_mb=8)
    tmp = tempfile.mkdtemp(prefix="avemo-hostile-bombs-", dir=args.work)
    big = ffmpeg(["-f", "lavfi", "-i", "color=c=gray:s=7680x4320:r=25", "-frames:v", "1", "-c:v", "libx264",
                  "-preset", "ultrafast"], os.path.join(tmp, "8k.h264"))
    # 200 frames of 64x48 (8 s, past the probe's 5 s), one 8K frame, 200 more: MPEG-TS declares
    # no frame size, the probe sees 64x48, and the frames picked for faces lie on both sides.
    small = ffmpeg(["-f", "lavfi", "-i", "testsrc=s=64x48:r=25", "-frames:v", "200", "-c:v", "libx264",
                    "-preset", "ultrafast", "-bsf:v", "h264_mp4toannexb"], os.path.join(tmp, "small.h264"))
    with open(os.path.join(tmp, "switch.h264"), "wb") as f:
        f.write(small + big + small)
    frame_8k = ffmpeg(["-r", "25", "-i", os.path.join(tmp, "8k.h264"), "-c", "copy"], os.path.join(tmp, "8k.mp4"))
    switch = ffmpeg(["-r", "25", "-i", os.path.join(tmp, "switch.h264"), "-c", "copy"],
                    os.path.join(tmp, "switch.ts"))
    # Within the picture size limits, over the picture byte limit (16 bits a channel, 128 MiB).
    deep = ffmpeg(["-f", "lavfi", "-i", "color=c=gray:s=4096x4096", "-frames:v", "1", "-pix_fmt", "rgba64be"],
                  os.path.join(tmp, "deep.png"))
    idle = rss_kb(srv.proc.pid, "VmRSS")
    print("server idle: VmRSS %d KB, VmHWM %d KB" % (idle, rss_kb(srv.proc.pid, "VmHWM")))
    for what, data, name in [("a 746 KB PNG declaring 16000x16000", png_bomb(), "bomb.png"),
                             ("one 7680x4320 H.264 frame", frame_8k, "8k.mp4"),
                             ("64x48 H.264 switching to 7680x4320 in mid-stream", switch, "switch.ts"),
                             ("a 204 KB PNG of 4096x4096 pixels of 64 bits", deep, "deep.png")]:
        reset_peak(srv.proc.pid)
        t0 = time.time()
        status, parsed, raw = predict(srv.port, data, name)
        seconds = time.time() - t0
        grown = (rss_kb(srv.proc.pid, "VmHWM") - idle) / 1024.0
        code, message = error_code(parsed)
        print("  %s: %d %s in %.2f s, peak RSS +%.1f MB over idle: %s" % (name, status, code, seconds, grown, message))
        check(status == 413 and code == "too_large" and bool(message) and
              any(size in message for size in ("7680x4320", "16000x16000", "4096x4096")),
              "%s (%d KB) -> 413 too_large naming the frame size (got %d %s)" % (what, len(data) // 1024, status,
                                                                                 raw[:120]))
        check(grown < 64, "%s: the server's peak RSS grew %.1f MB over idle (bound 64 MB)" % (what, grown))
    legit(srv, "the bombs")
    srv.stop()
    check(not srv.leftovers(), "nothing written beside the history database: %r" % srv.leftovers())
    shutil.rmtree(tmp, ignore_errors=True)


class Trickler:
    """Connections that send a request line and then one header byte a second (slowloris)."""

    def __init__(self, port, count, sources):
        self.socks, self.refused = [], 0
        for i in range(count):
            s = socket.socket()
            s.bind((sources[i % len(sources)], 0))
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            self.socks.append(s)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.trickle)
        self.thread.start()

    def trickle(self):
        while not self.stop.wait(1.0):
            for s in self.socks:
                try:
                    s.send(b"X")
                except OSError:
                    pass

    def open_count(self):
        """Connections the server still holds (no end of stream seen)."""
        n = 0
        for s in self.socks:
            r, _, _ = select.select([s], [], [], 0)
            try:
                if not r or s.recv(1, socket.MSG_PEEK):
                    n += 1
            except OSError:
                pass
        return n

    def close(self):
        self.stop.set()
        self.thread.join()
        for s in self.socks:
            s.close()


def timed_health(port, source):
    """GET /healthz from another address: (status, seconds)."""
    t0 = time.time()
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(TIMEOUT)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    except OSError:
        pass
    s.close()
    return status_of(answer), time.time() - t0


def case_slowloris(args):
    """64 trickling connections: a normal client is still answered within the request deadline."""
    deadline = 3
    srv = Server(args, ["--request-timeout", str(deadline), "--timeout", "30", "--max-connections", "64"])
    port = srv.port
    # One address: it may hold half of the connections, the rest are refused; others get in at once.
    t = Trickler(port, 64, ["127.0.0.1"])
    time.sleep(0.5)
    held = t.open_count()
    status, seconds = timed_health(port, "127.0.0.2")
    check(held <= 32, "64 trickling connections from one address: the server holds %d (at most 32)" % held)
    check(status == 200 and seconds < deadline,
          "a normal client meanwhile -> 200 in %.2f s (within the %d s deadline)" % (seconds, deadline))
    t.close()
    # Two addresses fill all 64 connections: the deadline frees them, however they trickle.
    t = Trickler(port, 64, ["127.0.1.1", "127.0.1.2"])
    time.sleep(0.5)
    status, seconds = timed_health(port, "127.0.0.2")
    print("  normal client behind 64 trickling connections: %d in %.2f s" % (status, seconds))
    check(status == 200 and seconds <= deadline + 0.5,
          "64 trickling connections from two addresses: a normal client -> 200 in %.2f s "
          "(deadline %d s)" % (seconds, deadline))
    time.sleep(1)
    check(t.open_count() == 0, "the trickling connections are closed at their deadline (%d open)" % t.open_count())
    t.close()
    metrics = request(port, "GET", "/metrics")[2].decode()
    cut = [int(line.split()[1]) for line in metrics.splitlines() if line.startswith("avemo_http_deadline_cut_total ")]
    check(cut and cut[0] >= 64, "/metrics counts the connections cut at the deadline: %r" % cut)
    # A body that trickles past the deadline is cut off too (libmicrohttpd cannot answer in
    # the middle of a body); the server stays up.
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: video/x-flv\r\n"
              b"Content-Length: 1000\r\n\r\n")
    t0, answer = time.time(), None
    try:
        for _ in range(4 * deadline):
            s.sendall(b"x")
            r, _, _ = select.select([s], [], [], 0.5)
            if r:
                answer = s.recv(4096)
                break
    except OSError:
        answer = b""
    s.close()
    check(answer == b"" and time.time() - t0 < deadline + 1,
          "an upload trickling past the deadline is closed at it (after %.2f s, got %r)" % (time.time() - t0, answer))
    legit(srv, "the trickling clients")
    srv.stop()
    check(not srv.leftovers(), "nothing written beside the history database: %r" % srv.leftovers())


def case_rfc(args):
    """RFC-valid requests that used to be refused: Content-Type spellings, keep-alive."""
    srv = Server(args)
    port = srv.port
    clip = open(CLIP, "rb").read()
    for ctype, boundary in [("multipart/form-data; boundary=B; charset=UTF-8", "B"),
                            ("Multipart/Form-Data; Boundary=B", "B"),
                            ('multipart/form-data; boundary="quoted:b=(1)"', "quoted:b=(1)"),
                            ("multipart/form-data ;charset=utf-8;  BOUNDARY=abc", "abc"),
                            ('MULTIPART/FORM-DATA; boundary="x y"; foo="a;b"', "x y")]:
        body, _ = multipart(clip, boundary=boundary)
        status, parsed, raw = request(port, "POST", "/v1/predict", body, {"Content-Type": ctype})
        check(status == 200 and isinstance(parsed, dict) and "label" in parsed,
              "Content-Type %r -> 200 (got %d %s)" % (ctype, status, raw[:100]))
    for ctype in ["multipart/form-data; boundary=", 'multipart/form-data; boundary="unterminated',
                  "multipart/form-data; boundary=a\x7fb", "video"]:
        body, _ = multipart(clip, boundary="b")
        expect_error(port, "Content-Type %r" % ctype, 400, ["bad_request"],
                     reply=request(port, "POST", "/v1/predict", body, {"Content-Type": ctype}))
    # Two GETs on one connection: answers without Connection: close, the second one served.
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\n"
              b"Connection: close\r\n\r\n")
    answer = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        answer += chunk
    s.close()
    first = answer.split(b"\r\n\r\n", 1)[0].lower()
    check(answer.count(b"HTTP/1.1 200") == 2 and b"connection: close" not in first,
          "two GETs on one kept-alive connection -> two 200s, the first without Connection: close (%r)"
          % first[:200])
    # A right-to-left override in a file name is not stored or echoed.
    status, parsed, raw = predict(port, clip, "clip\u202egpj.flv")
    status, hist, _ = request(port, "GET", "/v1/history?limit=1")
    names = [parsed.get("file", "") if isinstance(parsed, dict) else "",
             hist["items"][0]["file_name"] if isinstance(hist, dict) and hist.get("items") else ""]
    check(names == ["clipgpj.flv"] * 2, "a U+202E file name -> stored and echoed without it: %r" % names)
    srv.stop()
    check(not srv.leftovers(), "nothing written beside the history database: %r" % srv.leftovers())


def case_utf8(args):
    """Error answers to requests full of invalid UTF-8 are UTF-8 JSON, truncated between characters."""
    srv = Server(args)
    port = srv.port
    clip = open(CLIP, "rb").read()
    seen = len(failures)
    paths = ["/v1/history/%ff", "/v1/history/%c3%28", "/v1/predict?mode=%ff", "/v1/predict?model=%c3%28",
             "/v1/predict?model=" + "%c3%a9" * 100, "/v1/" + "%c3%a9" * 200, "/nope%ed%a0%80",
             "/v1/predict?mode=%e2%82", "/v1/history?limit=%ff", "/" + "%f0%9f%98%80" * 70]
    statuses = []
    for path in paths:
        for method in ("GET", "POST", "DELETE"):
            body, headers = multipart(clip[:1000], "\udcff\udcfe.flv") if method == "POST" else (b"", {})
            statuses.append(request(port, method, path, body, headers)[0])
    statuses.append(request(port, "POST", "/v1/predict", b"x" * 10, {"Content-Type": "video/\udcff"})[0])
    statuses.append(request(port, "POST", "/v1/predict", b"x" * 10, {"Content-Type": "text/\u00e9" + "\u00e9" * 40})[0])
    check(len(failures) == seen and all(400 <= st < 500 for st in statuses),
          "%d requests with invalid UTF-8: each a 4xx whose body is UTF-8 JSON (%r)" % (len(statuses), statuses))
    # What libmicrohttpd answers itself: listed, not JSON (docs/security.md).
    for what, payload in [("a 100 KB URL", b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
                          ("100 KB of headers", b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 100000 + b"\r\n\r\n"),
                          ("HTTP/1.1 without Host", b"GET /healthz HTTP/1.1\r\n\r\n"),
                          ("HTTP/2.0 in the request line", b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n"),
                          ("a header line without a colon", b"GET /healthz HTTP/1.1\r\nHost: x\r\nbad\r\n\r\n"),
                          ("Content-Length: abc", b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
                          ("Content-Length: 10^23", b"POST /v1/predict HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Length: 99999999999999999999999\r\n\r\n"),
                          ("a malformed chunk", b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: video/x-flv\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\nZZZ\r\nxx\r\n")]:
        answer = raw_exchange(port, payload)
        header, _, raw = answer.partition(b"\r\n\r\n")
        status = status_of(header)
        check(answer == b"" or status < 400 or check_error_body(status, raw, what),
              "%s -> %d, JSON or a listed libmicrohttpd page" % (what, status))
    print("  libmicrohttpd's own pages seen: %r" % sorted(set(mhd_pages_seen)))
    legit(srv, "the invalid UTF-8")
    srv.stop()
    check(not srv.leftovers(), "nothing written beside the history database: %r" % srv.leftovers())


def run_cli(args, argv, env=None, timeout=20):
    try:
        p = subprocess.run([args.program, *argv], capture_output=True, timeout=timeout, env=env)
        return p.returncode, p.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        return None, "timed out after %d s" % timeout


def case_cli(args):
    """The command line: a FIFO, empty values, a long path."""
    tmp = tempfile.mkdtemp(prefix="avemo-hostile-cli-", dir=args.work)
    fifo = os.path.join(tmp, "fifo.flv")
    os.mkfifo(fifo)
    for command in (["classify", "--model", args.model], ["probe"], ["faces"], ["features"]):
        rc, err = run_cli(args, command + [fifo])
        check(rc == 1 and "FIFO" in err, "avemo %s on a FIFO nobody writes -> refused at once (%s %s)"
              % (command[0], rc, err.strip()[:120]))
    env = dict(os.environ)
    env.pop("AVEMO_API_KEY", None)
    for argv, what in [(["serve", "--api-key", ""], "--api-key ''"), (["serve", "--api-key="], "--api-key="),
                       (["serve", "--db", ""], "--db ''"), (["classify", ""], "an empty file name")]:
        rc, err = run_cli(args, argv, env=env)
        check(rc == 2 and "empty" in err, "avemo %s -> usage error naming it (%s %s)" % (what, rc, err.strip()[:100]))
    rc, err = run_cli(args, ["serve", "--port", "0", "--model", args.model], env=dict(env, AVEMO_API_KEY=""))
    check(rc == 2 and "AVEMO_API_KEY" in err, "AVEMO_API_KEY='' -> usage error (%s %s)" % (rc, err.strip()[:100]))
    for path, cause in [(os.path.join(tmp, "d" * 200, "e" * 200, "f" * 200 + ".flv"), "No such file or directory"),
                        (os.path.join(tmp, "x" * 600 + ".flv"), "File name too long")]:
        for command in (["probe"], ["classify", "--model", args.model]):
            rc, err = run_cli(args, command + [path])
            check(rc == 1 and cause in err and "..." in err,
                  "avemo %s on a %d-character path keeps the cause: %r" % (command[0], len(path), err.strip()[-90:]))
    shutil.rmtree(tmp, ignore_errors=True)


def case_burst(args):
    """1,000 requests from 32 clients at once: every one answered, the server still up."""
    # 32 clients on one address are more than the default per-client share (half of the
    # connections, and a closed connection counts until the server has cleaned it up): this
    # is the server as it runs behind a reverse proxy, where every client has one address.
    srv = Server(args, ["--max-connections", "64", "--max-connections-per-client", "64"])
    port = srv.port
    clip = open(CLIP, "rb").read()
    counts, lock = {}, threading.Lock()

    def one(i):
        if i % 100 == 0:
            status = predict(port, clip)[0]
        elif i % 3 == 0:
            status = request(port, "POST", "/v1/predict", b"", {"Content-Type": "video/x-flv"})[0]
        elif i % 3 == 1:
            status = request(port, "GET", "/v1/models")[0]
        else:
            status = request(port, "GET", "/healthz")[0]
        with lock:
            counts[status] = counts.get(status, 0) + 1

    def worker(start):
        for i in range(start, 1000, 32):
            one(i)

    t0 = time.time()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    answered = sum(n for s, n in counts.items() if s in (200, 400, 503))
    check(answered == 1000 and srv.alive(),
          "1000 requests in %.1f s: all answered 200/400/503 %r" % (time.time() - t0, counts))
    legit(srv, "the burst")
    srv.stop()
    check(not srv.leftovers(), "nothing written beside the history database: %r" % srv.leftovers())


def case_crash(args):
    """kill -9 during a burst of predictions: the history survives, every answered row is in it."""
    srv = Server(args, ["--threads", "2"])
    port = srv.port
    clip = open(CLIP, "rb").read()
    answered, lock, stop = [], threading.Lock(), threading.Event()

    def client(k):
        while not stop.is_set():
            status, parsed, raw = predict(port, clip, "crash_%d.flv" % k)
            if status == 200 and isinstance(parsed, dict) and "id" in parsed:
                with lock:
                    answered.append((parsed["id"], parsed.get("sha256")))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    deadline = time.time() + 90
    while time.time() < deadline:
        with lock:
            if len(answered) >= 6:
                break
        time.sleep(0.05)
    srv.kill9()
    stop.set()
    for t in threads:
        t.join(TIMEOUT)
    check(len(answered) >= 6, "%d predictions answered before kill -9" % len(answered))
    db = sqlite3.connect(srv.db)
    integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    check(integrity == "ok", "history after kill -9: PRAGMA integrity_check = %s" % integrity)
    rows = {row[0]: row[1] for row in db.execute("SELECT id, sha256 FROM predictions")}
    db.close()
    missing = [i for i, sha in answered if rows.get(i) != sha]
    check(not missing, "every answered prediction is in the history (%d answered, %d rows, missing %r)"
          % (len(answered), len(rows), missing))
    srv.start()  # restart on the same database
    status, hist, raw = request(srv.port, "GET", "/v1/history?limit=1")
    check(status == 200 and isinstance(hist, dict) and hist.get("total", -1) == len(rows),
          "restarted server lists the %d rows (got %d %s)" % (len(rows), status, raw[:100]))
    legit(srv, "the restart")
    srv.stop()


def case_nested(args):
    """Uploads that make FFmpeg open other files (concat scripts, playlists) or misdetect noise."""
    srv = Server(args)
    port = srv.port
    # A file the server could read relative to its directory, if a demuxer followed the name.
    shutil.copy(os.path.join(SOURCE, "tests", "data", "audio", "1001_DFA_ANG_XX.wav"), os.path.join(srv.dir, "local.wav"))
    concat = b"ffconcat version 1.0\nfile local.wav\n"
    expect_error(port, "an ffconcat script naming a local file", 415, ["unsupported"], concat, "list.flv")
    playlist = b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nlocal.wav\n#EXT-X-ENDLIST\n"
    expect_error(port, "an HLS playlist naming a local file", 415, ["unsupported"], playlist, "list.flv")
    # 5000 bytes of noise (urandom) that FFmpeg's mp3 probe takes (score 1) and then refuses with EINVAL.
    noise = open(os.path.join(SOURCE, "tests", "hostile", "data", "noise_mp3_misdetect.bin"), "rb").read()
    expect_error(port, "noise misdetected as mp3", 415, ["unsupported", "corrupt"], noise, "noise.flv")
    os.unlink(os.path.join(srv.dir, "local.wav"))
    legit(srv, "the nested-open uploads")
    srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--program", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("case", choices=["model", "inputs", "protocol", "slow", "burst", "crash", "nested", "bombs",
                                     "slowloris", "rfc", "utf8", "cli"])
    args = ap.parse_args()
    args.work = os.path.abspath(args.work)
    args.program = os.path.abspath(args.program)
    os.makedirs(args.work, exist_ok=True)
    args.model = os.path.join(args.work, "hostile.avm")
    if shutil.which("ffmpeg") is None:
        print("ffmpeg CLI missing")
        return 77
    if args.case != "model" and not os.path.exists(args.model):
        print("no model: run the hostile_model test first")
        return 1
    globals()["case_" + args.case](args)
    print("%d failure(s)" % len(failures))
    if not failures:
        for d in server_dirs:
            shutil.rmtree(d, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
