"""Benchmark: 100 activate / switch / stop cycles of the serving orchestrator against the stand-in server.

Run by hand (not in CI):  uv run python bench/activation_cycles.py [--cycles 100] [--delay 0.3] [--cli 5]

Each cycle, through the library call the CLI and GUI use (``imageworks_models.serving``):
activate qwen-a, switch to qwen-b (stop qwen-a's process group, start qwen-b), stop. The stand-in
(plugins/vllm/tests/standin_server.py) answers /health 503 for ``--delay`` seconds after it binds, like a
model that is loading; every fifth cycle its qwen-a also forks a stray worker into its process group.

Prints:
- the reference: the stand-in run by itself, from exec to its first /health 200 (its own start: Python
  start-up, bind, the delay), median of 20 runs measured in this run;
- activation and switch times, and our added latency over the reference (median, p90, max; target:
  median <= 0.3 s), also as a ratio to the reference;
- orphans (stand-in processes still alive) and zombies (new zombie processes anywhere on the machine: ours
  unreaped, or servers left to an init that does not reap) at the end (target 0 and 0);
- with ``--cli N``: N activations through the real ``imageworks-loader activate-model`` process, and
  ``python -c pass`` as the reference for what a fresh CLI process costs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STANDIN = ROOT / "plugins" / "vllm" / "tests" / "standin_server.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def standalone_start(delay: float) -> float:
    """Seconds from exec to the first /health 200 of the stand-in run directly (the reference)."""
    port = free_port()
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(STANDIN), "serve", "/m", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "STANDIN_START_DELAY": str(delay)})
    interval = 0.005
    while not ready(port):
        time.sleep(interval)
    took = time.monotonic() - began
    proc.terminate()
    proc.wait()
    return took


def standin_pids() -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                args = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
                state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if str(STANDIN).encode() in args and state not in ("Z", "X"):
                out.append(int(name))
    return out


def all_zombies() -> list[int]:
    """Zombie processes on the machine: our unreaped children, and any a dead parent left to an init that does
    not reap (servers started by a CLI process are re-parented to init when the CLI exits)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] == "Z":
                out.append(int(name))
    return out


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"median {statistics.median(values):.3f} s, p90 {p90:.3f} s, max {max(values):.3f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--delay", type=float, default=0.3, help="the stand-in's own start delay (seconds)")
    parser.add_argument("--cli", type=int, default=5, help="activations through the CLI process (0: none)")
    args = parser.parse_args()
    zombies_before = set(all_zombies())

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights"
        weights.mkdir()
        env = {"IMAGEWORKS_REGISTRY_DIR": f"{tmp}/registry", "IMAGEWORKS_VLLM_BIN":
               f"{shlex.quote(sys.executable)} {shlex.quote(str(STANDIN))}", "CHAT_PROXY_VLLM_PORT": str(free_port()),
               "CHAT_PROXY_VLLM_SINGLE_PORT": "1", "IMAGEWORKS_STOP_GRACE": "5", "STANDIN_START_DELAY": str(args.delay),
               "HOME": tmp}
        os.environ.update(env)
        from imageworks_models import testing
        from imageworks_models.serving import activate, deactivate
        from imageworks_models.settings import load_settings

        testing.make_registry(Path(tmp) / "registry", *[
            {"name": n, "backend": "vllm", "served_model_id": f"org/{n}",
             "backend_config": {"model_path": str(weights)}} for n in ("qwen-a", "qwen-b")])
        settings = load_settings()

        reference = statistics.median(standalone_start(args.delay) for _ in range(20))
        starts, switches, stops = [], [], []
        for cycle in range(args.cycles):
            os.environ.pop("STANDIN_FORK_GRANDCHILD", None)
            if cycle % 5 == 0:
                os.environ["STANDIN_FORK_GRANDCHILD"] = "1"
            t0 = time.monotonic()
            activate("qwen-a", settings=settings)
            t1 = time.monotonic()
            os.environ.pop("STANDIN_FORK_GRANDCHILD", None)
            activate("qwen-b", settings=settings)
            t2 = time.monotonic()
            deactivate(settings=settings)
            t3 = time.monotonic()
            starts.append(t1 - t0)
            switches.append(t2 - t1)
            stops.append(t3 - t2)
            if (cycle + 1) % 10 == 0:
                print(f"  {cycle + 1} cycles", file=sys.stderr)

        cli_times = []
        exe = Path(sys.executable).with_name("imageworks-loader")
        for _ in range(args.cli):
            t0 = time.monotonic()
            subprocess.run([str(exe), "activate-model", "qwen-a"], check=True, capture_output=True)
            cli_times.append(time.monotonic() - t0)
            subprocess.run([str(exe), "activate-model", "--stop"], check=True, capture_output=True)
        # Servers started by a CLI process are re-parented to init when it exits; init reaps them once they
        # are stopped, on its own schedule: give it a moment before counting.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (set(all_zombies()) - zombies_before or standin_pids()):
            time.sleep(0.05)
        orphans = standin_pids()
        zombie_list = sorted(set(all_zombies()) - zombies_before)
        state = json.loads(Path(f"{tmp}/registry/_staging/active_vllm.json").read_text()) \
            if Path(f"{tmp}/registry/_staging/active_vllm.json").exists() else None

    added_start = [t - reference for t in starts]
    added_switch = [t - reference for t in switches]
    print(f"reference: the stand-in alone, exec to first /health 200 (delay {args.delay:g} s): "
          f"median {reference:.3f} s over 20 runs")
    print(f"activate ({args.cycles}x): {summary(starts)}")
    print(f"switch   ({args.cycles}x): {summary(switches)}  (stop the old group + start)")
    print(f"stop     ({args.cycles}x): {summary(stops)}")
    print(f"added over the reference, activate: {summary(added_start)}; "
          f"ratio {statistics.median(starts) / reference:.2f}x")
    print(f"added over the reference, switch:   {summary(added_switch)}; "
          f"ratio {statistics.median(switches) / reference:.2f}x")
    if cli_times:
        pass_start = statistics.median(
            (lambda t: (subprocess.run([sys.executable, "-c", "pass"]), time.monotonic() - t)[1])(time.monotonic())
            for _ in range(5))
        print(f"CLI activate-model ({len(cli_times)}x): median {statistics.median(cli_times):.3f} s; "
              f"python -c pass {pass_start:.3f} s; added over the reference "
              f"{statistics.median(cli_times) - reference:.3f} s")
    print(f"orphans left: {len(orphans)}   zombies left: {len(zombie_list)}   state file left: {state is not None}")
    ok = not orphans and not zombie_list and state is None and statistics.median(added_start) <= 0.3
    print("targets (0 orphans, 0 zombies, median added <= 0.3 s):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
