"""Download benchmark: the `download` command as a process against curl and `hf download`, interleaved, loopback.

Serves one 1 GiB file (LFS, so the resolve URL redirects to the CDN port) from the stand-in Hub in
plugins/hf/tests/hubserver.py, in a process of its own (it sends file bodies with os.sendfile, so the
server is not what limits anyone: curl against it sets the reference). Every round runs, in turn, with
the output folder emptied before each:

  curl      `curl -sfL -o FILE <resolve url>` as a process (no digest at all, no fsync)
  hf        `hf download REPO FILE --revision C --cache-dir DIR` as a process (huggingface_hub's CLI; it
            checks the size only)
  ours      the whole `imageworks-download download REPO@C --non-interactive --no-aria2` command as a process:
            start-up, resolve, plan, fetch (sha256 computed while the bytes arrive and compared with the
            Hub's LFS sha256, no second read), fsync, promote, manifest from the download's digests,
            registry write
  library   the library call `imageworks_models_hf.transfer.fetch` in this process (a second line, the
            transfer alone)

Goals, judged on the medians of >= 5 interleaved rounds: ours >= 1.0x curl and >= 2x hf. Then the resume
figure: the command is killed (SIGKILL) once its partial file passes 50%, run again, and the bytes the
server sent over both runs are compared with the file size (goal: re-fetched share < 5%).

Run by hand:  uv run python bench/download_throughput.py [--runs 5] [--size-mib 1024] [--dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import goal, interleave, median, show, summary, timed

MiB = 1 << 20
REPO = Path(__file__).resolve().parent.parent
REPO_ID = "bench/one-gib"
NAME = "model.safetensors"


def write_random(path: Path, size: int) -> None:
    """A real safetensors file of ``size`` bytes: one U8 tensor of random bytes (a scan reads its header)."""
    block = os.urandom(16 * MiB)
    header = b""
    for _ in range(3):  # the header's length depends on the data length written in it
        data_len = size - 8 - len(header)
        header = json.dumps({"w": {"dtype": "U8", "shape": [data_len], "data_offsets": [0, data_len]}}).encode()
        header += b" " * (-(8 + len(header)) % 8)
    data_len = size - 8 - len(header)
    with open(path, "wb") as f:
        f.write(len(header).to_bytes(8, "little") + header)
        left, i = data_len, 0
        while left:
            chunk = block[: min(left, len(block))]
            f.write(i.to_bytes(8, "little") + chunk[8:])
            left -= len(chunk)
            i += 1


SERVER = f"""
import importlib.util, json, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("hubserver", {str(REPO / "plugins" / "hf" / "tests" / "hubserver.py")!r})
hubserver = importlib.util.module_from_spec(spec)
sys.modules["hubserver"] = hubserver
spec.loader.exec_module(hubserver)
with hubserver.StandInHub() as hub:
    commit = hub.add_repo({REPO_ID!r}, {{{NAME!r}: Path(sys.argv[1]), "config.json": b'{{"model_type": "llama"}}'}})
    for line in sys.stdin:
        command = line.strip()
        if command == "hello":
            answer = {{"url": hub.url, "commit": commit}}
        elif command == "reset":
            hub.reset_stats()
            answer = {{}}
        else:
            answer = {{"sent": sum(v for (repo, path), v in hub.bytes_sent.items() if path == {NAME!r})}}
        print(json.dumps(answer), flush=True)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one)")
    args = ap.parse_args()
    if args.runs < 5:
        sys.exit("--runs must be at least 5 (goals are judged on the median)")
    shutil.which("curl") or sys.exit("curl is needed as the reference (apt install curl)")

    work = Path(args.dir or tempfile.mkdtemp(prefix="iw-dl-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    source = work / "source.bin"
    size = args.size_mib * MiB
    if not source.exists() or source.stat().st_size != size:
        print(f"writing {source} ({args.size_mib} MiB)...", file=sys.stderr)
        write_random(source, size)
    h = hashlib.sha256()
    with open(source, "rb") as f:
        while chunk := f.read(16 * MiB):
            h.update(chunk)
    expected = h.hexdigest()

    bindir = Path(sys.executable).parent
    cli, hf_cli = str(bindir / "imageworks-download"), str(bindir / "hf")
    os.path.exists(hf_cli) or sys.exit(f"{hf_cli} not found (huggingface_hub's CLI is the second reference)")
    base_env = dict(os.environ, HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1",
                    HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HOME=str(work / "hf-home"))
    base_env.pop("HF_TOKEN", None)
    # The stand-in Hub runs in its own process: in this one its threads would compete for our GIL.
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(source)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, bufsize=1)

    def ask(command: str) -> dict:
        server.stdin.write(command + "\n")
        server.stdin.flush()
        return json.loads(server.stdout.readline())

    out = work / "out"
    try:
        hello = ask("hello")
        url_base, commit = hello["url"], hello["commit"]
        url = f"{url_base}/{REPO_ID}/resolve/{commit}/{NAME}"
        env = dict(base_env, HF_ENDPOINT=url_base, IMAGEWORKS_REGISTRY_DIR=str(work / "registry"),
                   IMAGEWORKS_WEIGHTS_ROOT=str(out / "w"), IMAGEWORKS_CACHE_DIR=str(work / "cache"),
                   IMAGEWORKS_USE_ARIA2="0")
        os.environ.update(env)

        def fresh(_name: str = "") -> None:
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(work / "registry", ignore_errors=True)
            out.mkdir()
            (work / "registry").mkdir()

        def curl() -> float:
            return timed(["curl", "-sfL", "-o", str(out / NAME), url], env)

        def hf() -> float:
            return timed([hf_cli, "download", REPO_ID, NAME, "--revision", commit, "--cache-dir",
                          str(out / "cache"), "--quiet"], env)

        def ours() -> float:
            return timed([cli, "download", f"{REPO_ID}@{commit}", "--non-interactive", "--no-aria2"], env)

        def library() -> float:
            from imageworks_models_hf import transfer

            target = transfer.Target(url=url, part=out / (NAME + ".part"), size=size, sha256=expected,
                                     git_oid=None, label=NAME, commit=commit)
            t0 = time.perf_counter()
            outcome = transfer.fetch(target, token_origin=transfer.origin(url_base))
            elapsed = time.perf_counter() - t0
            assert outcome.sha256 == expected
            return elapsed

        def checked(fn, path_of):
            def case() -> float:
                elapsed = fn()
                p = path_of()
                if p is None or p.stat().st_size != size:
                    raise SystemExit(f"{fn.__name__}: the downloaded file is missing or the wrong size")
                return elapsed
            return case

        final = out / "w" / "bench" / "one-gib" / NAME
        cases = {
            "curl (process)": checked(curl, lambda: out / NAME),
            "hf download (process)": checked(hf, lambda: next((out / "cache").rglob(NAME), None)),
            "imageworks-download download (process)": checked(ours, lambda: final),
            "transfer.fetch (library call)": checked(library, lambda: out / (NAME + ".part")),
        }
        print(f"download of {args.size_mib} MiB over loopback from the stand-in Hub (sendfile), "
              f"{args.runs} interleaved rounds, {len(os.sched_getaffinity(0))} usable CPUs", flush=True)
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            print("  note: PYTHONDONTWRITEBYTECODE is set here, so every command start compiles whatever the install "
                  "left without bytecode (an editable checkout's own modules)", flush=True)
        samples = interleave(cases, runs=args.runs, before_each=fresh)

        # resume after a kill at 50%
        fresh()
        ask("reset")
        staging = out / "w" / ".imageworks-staging"
        cmd = [cli, "download", f"{REPO_ID}@{commit}", "--non-interactive", "--no-aria2"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        killed_at = 0
        while proc.poll() is None:
            parts = list(staging.rglob(NAME)) if staging.exists() else []
            have = max((p.stat().st_size for p in parts), default=0)
            if have >= size // 2:
                proc.send_signal(signal.SIGKILL)
                killed_at = have
                break
            time.sleep(0.002)
        proc.wait()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        total = ask("stats")["sent"]
        resumed_ok = final.exists() and final.stat().st_size == size
        refetched = (total - size) / size
    finally:
        server.stdin.close()
        server.wait(timeout=10)

    print()
    gbps = {}
    for label, values in samples.items():
        mid = show(label, values)
        gbps[label] = size / mid / 1e9
    print()
    for label, rate in gbps.items():
        print(f"  {label:<52} {rate:6.2f} GB/s (median)")
    curl_t = median(samples["curl (process)"])
    hf_t = median(samples["hf download (process)"])
    ours_t = median(samples["imageworks-download download (process)"])
    lib_t = median(samples["transfer.fetch (library call)"])
    print(f"\n  library call: {curl_t / lib_t:.2f}x curl, {hf_t / lib_t:.2f}x hf download (not a goal: the goals "
          "are the whole command's)")
    print()
    goal("download command >= 1.0x curl", curl_t / ours_t >= 1.0,
         f"{curl_t / ours_t:.2f}x: median {ours_t * 1000:.0f} ms vs curl {curl_t * 1000:.0f} ms, sha256 checked "
         "on the fly")
    goal("download command >= 2x hf download", hf_t / ours_t >= 2.0,
         f"{hf_t / ours_t:.2f}x: median {ours_t * 1000:.0f} ms vs hf download {hf_t * 1000:.0f} ms")
    goal("resume after a kill at 50% re-fetches < 5%", resumed_ok and killed_at > 0 and refetched < 0.05,
         f"killed at {killed_at / size:.0%}, the server sent {total / size:.3f}x the file over both runs, "
         f"re-fetched {refetched:.2%}; final file {'complete' if resumed_ok else 'MISSING'}")
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
