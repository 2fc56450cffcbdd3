"""Item 10 of issue 17 (RELIABILITY D23): a stalled Hub API call or a trickling file ends in a clear error within
the configured timeouts, keeping the partial file for resume. Stand-in servers on 127.0.0.1 speak plain HTTP."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
from _helpers import cli, make_registry

from imageworks_models.errors import DownloadError

transfer = pytest.importorskip("imageworks_models_hf.transfer", reason="the hf plugin is not installed")


class Server:
    """Accepts connections; ``mode`` says what it does with each: ``stall`` (read the request, answer nothing),
    ``trickle`` (headers, then one byte every ``pause`` seconds)."""

    def __init__(self, mode: str, *, size: int = 1 << 20, pause: float = 0.25):
        self.mode, self.size, self.pause = mode, size, pause
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.conns: list[socket.socket] = []
        self.handlers: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._serve, daemon=True)
        self.acceptor.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.handlers.append(threading.Thread(target=self._handle, args=(conn,), daemon=True))
            self.handlers[-1].start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            if self.mode == "stall":
                self.stop.wait(60)
                return
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {self.size}\r\nContent-Type: application/json\r\n"
                         "\r\n".encode())
            for _ in range(self.size):
                if self.stop.wait(self.pause):
                    return
                conn.sendall(b"{" if self.mode == "trickle-json" else b"x")
        except OSError:
            pass

    def close(self) -> None:
        # Shut down, join, and only then close: a thread still blocked in accept() on a closed descriptor was
        # seen (on a loaded machine) to take a connection from the socket later given that number, a later
        # test's stand-in server, and stall it.
        self.stop.set()
        _shutdown(self.sock)  # wakes the accept()
        self.acceptor.join(10)
        for c in self.conns:
            _shutdown(c)  # wakes a recv()
        for thread in self.handlers:
            thread.join(10)
        self.sock.close()
        for c in self.conns:
            c.close()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


@pytest.mark.parametrize("mode", ["stall", "trickle-json"])
def test_d23_a_stalled_or_trickling_hub_api_ends_in_one_clear_line(tmp_path, mode, figure):
    server = Server(mode)
    try:
        env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{server.port}",
               "IMAGEWORKS_REGISTRY_DIR": str(make_registry(tmp_path / "reg", curated=[], discovered=[])), "IMAGEWORKS_WEIGHTS_ROOT": str(tmp_path / "w"),
               "IMAGEWORKS_DOWNLOAD_CONNECT_TIMEOUT": "0.5", "IMAGEWORKS_DOWNLOAD_READ_TIMEOUT": "0.5"}
        start = time.monotonic()
        result = cli("download", "org/model", env=env, timeout=60)
        secs = time.monotonic() - start
    finally:
        server.close()
    figure(f"D23: Hub API that {'never answers' if mode == 'stall' else 'trickles 4 bytes/s'}: clear error after "
           f"{secs:.1f} s (timeouts 0.5 s connect, 0.5 s read)")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "stalled" in errors[0] or "timed out" in errors[0].lower() or "cannot reach" in errors[0], errors
    assert secs < 20


def test_d23_a_trickling_file_hits_the_rate_floor_and_keeps_the_partial(tmp_path, figure):
    server = Server("trickle", size=1 << 20, pause=0.05)  # 20 bytes/s against a 1,000 bytes/s floor
    target = transfer.Target(url=f"http://127.0.0.1:{server.port}/org/model/resolve/x/model.bin",
                             part=tmp_path / "model.bin.part", size=1 << 20, sha256="0" * 64, git_oid=None,
                             label="org/model/model.bin")
    start = time.monotonic()
    try:
        with pytest.raises(DownloadError) as info:
            transfer.fetch(target, timeout=5, connect_timeout=1, floor=transfer.RateFloor(1000, 1.0))
    finally:
        server.close()
    secs = time.monotonic() - start
    kept = target.part.stat().st_size
    figure(f"D23: 20 bytes/s trickle against a 1,000 bytes/s floor over 1 s: stopped after {secs:.1f} s, "
           f"{kept} bytes kept for resume")
    assert "stalled" in info.value.message and "resume" in info.value.hint
    assert secs < 5
    assert kept > 0


def test_d23_timeouts_and_floor_are_settings(tmp_path):
    env = {**os.environ, "IMAGEWORKS_REGISTRY_DIR": str(tmp_path), "IMAGEWORKS_DOWNLOAD_MIN_RATE": "4096"}
    result = cli("config", "--json", env=env)
    assert result.returncode == 0, result.stderr
    import json

    data = json.loads(result.stdout)
    assert data["download_min_rate"]["value"] == 4096
    assert data["download_connect_timeout"]["value"] > 0 and data["download_read_timeout"]["value"] > 0
    assert data["download_rate_window"]["value"] > 0
