"""Benchmark: 100 activate / switch / stop cycles of the serving orchestrator against the stand-in server
(or, with ``--engine``, 20 cycles against the real llama.cpp engine).

Run by hand (not in CI):  uv run python bench/activation_cycles.py [--cycles 100] [--delay 0.3] [--cli 5]
                          uv run python bench/activation_cycles.py --engine [--cycles 20] [--cli 5]

Each cycle, through the library call the CLI and GUI use (``imageworks_models.serving.control``):
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

``--engine``: llama-cpp-python's server (the ``engine`` dependency group) on two tiny GGUF models written by
plugins/llamacpp/tests/tinygguf.py. Each cycle, interleaved: the reference (the same engine on the same model
started by hand, ``python -m llama_cpp.server``, polled every 5 ms until ``/v1/models`` lists it), then
activate tiny-a, switch to tiny-b, stop, and the time until the port can be bound again. Prints our added time
over the reference (target: median <= 0.3 s), the switch time, the port-free time after each stop (target:
<= 1 s every time), orphans and zombies (target 0 and 0), and the engine's version.
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
    parser.add_argument("--cycles", type=int, default=None, help="cycles (default: 100; 20 with --engine)")
    parser.add_argument("--delay", type=float, default=0.3, help="the stand-in's own start delay (seconds)")
    parser.add_argument("--cli", type=int, default=5, help="activations through the CLI process (0: none)")
    parser.add_argument("--engine", action="store_true", help="the real llama.cpp engine instead of the stand-in")
    args = parser.parse_args()
    if args.engine:
        return engine_main(args.cycles or 20, args.cli)
    args.cycles = args.cycles or 100
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
        from imageworks_models.serving.control import activate, deactivate
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


# --- the real engine ----------------------------------------------------------------------------------------


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def engine_lists(port: int, alias: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1) as response:
            return alias in [m.get("id") for m in json.load(response).get("data", [])]
    except (OSError, ValueError):
        return False


def engine_by_hand(model: Path, alias: str) -> float:
    """Seconds from exec to the first ``/v1/models`` listing ``alias``, the engine started directly (the reference)."""
    port = free_port()
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
                             "--port", str(port), "--model_alias", alias], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "HOST": "127.0.0.1", "PORT": str(port)})
    while not engine_lists(port, alias):
        if proc.poll() is not None:
            raise SystemExit(f"the engine exited with code {proc.returncode} when started by hand")
        time.sleep(0.005)
    took = time.monotonic() - began
    proc.terminate()
    proc.wait()
    return took


def engine_pids(marker: str) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                args = Path(f"/proc/{name}/cmdline").read_bytes()
                state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if b"llama_cpp.server" in args and marker.encode() in args and state not in ("Z", "X"):
                out.append(int(name))
    return out


def zombies(pids) -> list[int]:
    out = []
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                out.append(pid)
        except OSError:
            continue
    return sorted(out)


def engine_main(cycles: int, cli: int) -> int:
    import importlib.util
    from importlib.metadata import PackageNotFoundError, version

    try:
        engine_version = version("llama-cpp-python")
    except PackageNotFoundError:
        print("llama-cpp-python is not installed: uv sync --group engine (see the README's llama.cpp section)")
        return 1
    spec = importlib.util.spec_from_file_location("tinygguf", ROOT / "plugins" / "llamacpp" / "tests" / "tinygguf.py")
    tinygguf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tinygguf)
    with tempfile.TemporaryDirectory() as tmp:
        models = {n: tinygguf.write_tiny_llama(Path(tmp) / f"{n}.gguf", seed=i, name=n)
                  for i, n in enumerate(("tiny-a", "tiny-b"), 1)}
        port = free_port()
        os.environ.update({"IMAGEWORKS_REGISTRY_DIR": f"{tmp}/registry", "CHAT_PROXY_VLLM_PORT": str(port),
                           "CHAT_PROXY_VLLM_SINGLE_PORT": "1", "HOME": tmp,
                           "IMAGEWORKS_LLAMACPP_BIN": f"{shlex.quote(sys.executable)} -m llama_cpp.server"})
        os.environ.pop("CONFIG_FILE", None)
        from imageworks_models import testing
        from imageworks_models.serving.control import activate, deactivate
        from imageworks_models.settings import load_settings

        testing.make_registry(Path(tmp) / "registry", *[
            {"name": n, "backend": "llamacpp", "served_model_id": n, "backend_config": {"model_path": str(p)}}
            for n, p in models.items()])
        settings = load_settings()
        references, starts, switches, freed, leftovers = [], [], [], [], 0
        ours: set[int] = set()  # every launcher and engine process of this run, to find zombies among them
        for cycle in range(cycles):
            references.append(engine_by_hand(models["tiny-a"], "tiny-a"))
            t0 = time.monotonic()
            ours.add(activate("tiny-a", settings=settings)["pid"])
            t1 = time.monotonic()
            ours.update(engine_pids(tmp))
            ours.add(activate("tiny-b", settings=settings)["pid"])
            t2 = time.monotonic()
            ours.update(engine_pids(tmp))
            deactivate(settings=settings)
            t3 = time.monotonic()
            while not port_free(port) and time.monotonic() - t3 < 5:
                time.sleep(0.005)
            freed.append(time.monotonic() - t3)
            leftovers += len(engine_pids(tmp))
            starts.append(t1 - t0)
            switches.append(t2 - t1)
            if (cycle + 1) % 5 == 0:
                print(f"  {cycle + 1} cycles", file=sys.stderr)
        cli_times, cli_refs = [], []
        exe = Path(sys.executable).with_name("imageworks-loader")
        for _ in range(cli):
            cli_refs.append(engine_by_hand(models["tiny-a"], "tiny-a"))
            t0 = time.monotonic()
            subprocess.run([str(exe), "activate-model", "tiny-a"], check=True, capture_output=True)
            cli_times.append(time.monotonic() - t0)
            ours.update(engine_pids(tmp))
            subprocess.run([str(exe), "activate-model", "--stop"], check=True, capture_output=True)
        # Servers started by a CLI process are re-parented to init when it exits; init reaps them once they are
        # stopped, on its own schedule: give it a moment before counting. Only this run's processes count (the
        # machine may hold other zombies).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (zombies(ours) or engine_pids(tmp)):
            time.sleep(0.05)
        orphans = engine_pids(tmp)
        zombie_list = zombies(ours)
        state_left = Path(f"{tmp}/registry/_staging/active_vllm.json").exists()

    added = [s - r for s, r in zip(starts, references)]
    print(f"engine: llama-cpp-python {engine_version} (python -m llama_cpp.server), CPU; tiny llama GGUF "
          f"(0.5 MB, 2 layers, n_embd 64)")
    print(f"reference: the engine started by hand, exec to /v1/models listing the model ({cycles}x, interleaved): "
          f"{summary(references)}")
    print(f"activate ({cycles}x): {summary(starts)}")
    print(f"switch   ({cycles}x): {summary(switches)}  (stop the old engine's group + start the other model)")
    print(f"added over the reference, activate: {summary(added)}; ratio "
          f"{statistics.median(starts) / statistics.median(references):.2f}x")
    print(f"port free after stop ({cycles}x): {summary(freed)}")
    if cli_times:
        print(f"CLI activate-model ({len(cli_times)}x): median {statistics.median(cli_times):.3f} s; added over the "
              f"reference {statistics.median([c - r for c, r in zip(cli_times, cli_refs)]):.3f} s")
    print(f"engine processes seen after a stop: {leftovers}   orphans left: {len(orphans)}   "
          f"zombies left (of the {len(ours)} launcher and engine processes this run started): {len(zombie_list)}   "
          f"state file left: {state_left}")
    ok = (not orphans and not zombie_list and not leftovers and not state_left and max(freed) <= 1.0
          and statistics.median(added) <= 0.3)
    print("targets (0 orphans, 0 zombies, port free <= 1 s, median added <= 0.3 s):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
