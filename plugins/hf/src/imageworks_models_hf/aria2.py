"""Large files through aria2c (several connections per file), when it is on PATH.

The token never appears on aria2c's command line (visible to every user in ``ps``): the URL and its
``header=`` option go through an input file on stdin. Redirects are resolved first by our own client,
and aria2c is given the final URL, with the token only when that URL is still on the Hub's host, so a
CDN never sees it. aria2c's exit codes become our errors (:data:`EXIT_CODES`); the file is hashed and
checked against the published sha256 before it is moved into place, exactly as on the built-in path.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from imageworks_models.api import (ChecksumMismatchError, DiskSpaceError, DownloadError, RemoteAccessError, RemoteNotFoundError, RemoteUnavailableError)
from imageworks_models.api import SILENT, Progress

from .transfer import Outcome, Target, _Retry, _status_error, _token_goes_to, _user_agent, open_url

MIN_SIZE = 64 << 20  # smaller files are not worth a process and several connections

# https://aria2.github.io/manual/en/html/aria2c.html#exit-status
EXIT_CODES: dict[int, tuple[type, str]] = {
    1: (DownloadError, "an unknown error occurred"),
    2: (RemoteUnavailableError, "the connection timed out"),
    3: (RemoteNotFoundError, "the file was not found on the server"),
    4: (RemoteNotFoundError, "the file was not found on the server (several times)"),
    5: (RemoteUnavailableError, "the download was too slow and was aborted"),
    6: (RemoteUnavailableError, "a network problem occurred"),
    7: (DownloadError, "the download was interrupted"),
    8: (DownloadError, "the server does not support resuming"),
    9: (DiskSpaceError, "there is not enough disk space"),
    13: (DownloadError, "the file already exists"),
    15: (DownloadError, "the partial file could not be opened"),
    16: (DownloadError, "the file could not be created or truncated"),
    17: (DownloadError, "a file I/O error occurred"),
    18: (DownloadError, "the folder could not be created"),
    19: (RemoteUnavailableError, "the host name could not be resolved"),
    22: (DownloadError, "the server's HTTP response header was bad or unexpected"),
    23: (DownloadError, "there were too many redirects"),
    24: (RemoteAccessError, "HTTP authorization failed"),
    28: (DownloadError, "aria2c rejected an option (a bug here: please report it)"),
    29: (RemoteUnavailableError, "the server is overloaded or under maintenance"),
    32: (ChecksumMismatchError, "checksum validation failed"),
}


def available() -> str | None:
    """The aria2c executable, or ``None`` when it is not on PATH."""
    return shutil.which("aria2c")


def error_for(code: int, label: str, output: str) -> Exception:
    """Our error for aria2c's exit ``code`` while fetching ``label`` (``output``: its last lines, token-free)."""
    kind, what = EXIT_CODES.get(code, (DownloadError, f"aria2c failed with exit code {code}"))
    detail = f" ({output.strip().splitlines()[-1][:200]})" if output.strip() else ""
    hint = ("free some space and run the same command again" if kind is DiskSpaceError else
            "check HF_TOKEN and the model's licence on the Hub" if kind is RemoteAccessError else
            "run the same command again to resume, or add --no-aria2 to use the built-in downloader")
    return kind(f"{label}: aria2c: {what} (exit code {code}){detail}", hint=hint)


def command(aria2c: str, *, connections: int, connect_timeout: float = 30, read_timeout: float = 60,
            min_rate: int = 0) -> list[str]:
    """aria2c's argument list: options only; the URL and any header come on stdin. The timeouts and the
    minimum rate are the download_* settings (D23); aria2c ends a connection slower than the floor itself."""
    n = str(max(1, min(16, connections)))
    limits = [f"--connect-timeout={max(1, round(connect_timeout))}", f"--timeout={max(1, round(read_timeout))}"]
    if min_rate > 0:
        limits.append(f"--lowest-speed-limit={int(min_rate)}")
    return [aria2c, "--input-file=-", "--continue=true", "--always-resume=false", "--max-resume-failure-tries=0",
            f"--max-connection-per-server={n}", f"--split={n}", "--min-split-size=16M", "--file-allocation=none",
            "--auto-file-renaming=false", "--allow-overwrite=true", "--conditional-get=false", "--remote-time=false",
            "--console-log-level=error", "--summary-interval=0", "--download-result=hide",
            "--show-console-readout=false",
            "--max-tries=5", "--retry-wait=1", *limits, "--follow-metalink=false",
            "--follow-torrent=false", "--enable-rpc=false", "--no-netrc=true", "--check-certificate=true"]


def input_file(url: str, part: Path, *, headers: dict[str, str]) -> str:
    """The stdin input file: the URL, then its per-download options (indented)."""
    lines = [url, f"  dir={part.parent}", f"  out={part.name}"]
    lines += [f"  header={k}: {v}" for k, v in headers.items()]
    return "\n".join(lines) + "\n"


def fetch(target: Target, *, aria2c: str, connections: int, token: str | None, token_origin: str | None,
          progress: Progress = SILENT, hash_file=None, limits: dict | None = None) -> Outcome:
    """Fetch ``target`` with aria2c, then hash it and check the published digest.

    Args:
        target: the file (``part`` is resumed by aria2c when present).
        aria2c: the executable.
        connections: connections per file.
        token, token_origin: the Hub token and the only origin allowed to see it.
        progress: advanced as the partial file fills.
        hash_file: ``hash_file(path) -> sha256 hex`` (the core's parallel hasher).

    Raises:
        ChecksumMismatchError: the file's sha256 differs from the Hub's (the file is deleted).
        DownloadError, RemoteAccessError, RemoteNotFoundError, RemoteUnavailableError, DiskSpaceError:
            from aria2c's exit code.
    """
    target.part.parent.mkdir(parents=True, exist_ok=True)
    before = target.part.stat().st_size if target.part.exists() else 0
    url, send_token = _final_url(target, token=token, token_origin=token_origin)
    headers = {"User-Agent": _user_agent(), "Accept-Encoding": "identity"}
    if send_token:
        headers["Authorization"] = f"Bearer {token}"
    proc = subprocess.Popen(command(aria2c, connections=connections, **(limits or {})), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        proc.stdin.write(input_file(url, target.part, headers=headers).encode())
        proc.stdin.close()
        shown = 0
        while proc.poll() is None:
            shown = _show(target.part, shown, progress)
            time.sleep(0.2)
        output = proc.stdout.read().decode(errors="replace")
    except BaseException:
        _kill(proc)
        raise
    finally:
        if proc.stdout:
            proc.stdout.close()
    if token:
        output = output.replace(token, "***")
    if proc.returncode != 0:
        raise error_for(proc.returncode, target.label, output)
    _show(target.part, shown, progress)
    size = target.part.stat().st_size if target.part.exists() else -1
    if size != target.size:
        raise DownloadError(f"{target.label}: aria2c finished with {size} bytes, expected {target.size}",
                            hint="run the same command again, or add --no-aria2")
    sha = hash_file(target.part)
    if target.sha256 and sha != target.sha256:
        target.part.unlink(missing_ok=True)
        raise ChecksumMismatchError(f"{target.label}: sha256 {sha[:16]}... does not match the Hub's "
                                    f"{target.sha256[:16]}... (bad file deleted)", hint="run the download again")
    return Outcome(sha256=sha, transferred=max(0, target.size - before), reused=before, restarts=0)


def _final_url(target: Target, *, token, token_origin) -> tuple[str, bool]:
    """Follow the Hub's redirects with a HEAD (token only on its own host); check the commit."""
    try:
        resp, url, history = open_url(target.url, headers={"User-Agent": _user_agent()}, token=token,
                                      token_origin=token_origin, method="HEAD")
    except _Retry as exc:
        raise RemoteUnavailableError(f"{target.label}: {exc}", hint="check the network, or try again later") from exc
    resp.close()
    if resp.status >= 400:
        raise _status_error(resp, target)
    from .transfer import _check_commit

    _check_commit(history[0][2] if history else dict(resp.getheaders()), target)
    return url, bool(token) and _token_goes_to(url, token_origin)


def _show(part: Path, shown: int, progress: Progress) -> int:
    try:
        st = part.stat()
    except FileNotFoundError:
        return shown
    # aria2c writes several ranges at once into a sparse file: its allocated blocks are the bytes written.
    now = min(st.st_size, st.st_blocks * 512)
    if now > shown:
        progress.advance(now - shown)
        return now
    return shown


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
