"""Where a model would run: the GPUs (through NVML when ``nvidia-ml-py`` is installed, else ``nvidia-smi``)
with their total and free memory and what each process uses, and this machine's RAM (``/proc/meminfo``).

Reading them never fails: no NVML, no ``nvidia-smi`` or a broken one gives an inventory without GPUs and
the reason in ``note``. Imports nothing above ``settings``.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from typing import Any

MIB = 1 << 20


@dataclass
class Gpu:
    index: int
    name: str
    total_bytes: int
    free_bytes: int
    used_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "total_bytes": self.total_bytes,
                "free_bytes": self.free_bytes, "used_bytes": self.used_bytes}


@dataclass
class Inventory:
    """GPUs, RAM, and GPU memory by process id (``process_bytes``)."""

    gpus: list[Gpu] = field(default_factory=list)
    source: str = "none"  # nvml | nvidia-smi | none
    ram_total_bytes: int | None = None
    ram_available_bytes: int | None = None
    note: str | None = None
    ours: dict[int, int] = field(default_factory=dict)  # what the orchestrator's live model holds: GPU index, -1 RAM
    _processes: dict[int, int] | None = None
    _command: str | None = None

    @property
    def process_bytes(self) -> dict[int, int]:
        """GPU memory by process id, read on first use (a second nvidia-smi query only when it is needed)."""
        if self._processes is None:
            self._processes = _smi_processes(self._command) if self._command and self.gpus else {}
        return self._processes

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "gpus": [g.as_dict() for g in self.gpus],
                "ram_total_bytes": self.ram_total_bytes, "ram_available_bytes": self.ram_available_bytes,
                "ours_bytes": {("ram" if k == -1 else f"gpu {k}"): v for k, v in self.ours.items() if v},
                "note": self.note}


def _meminfo() -> tuple[int | None, int | None]:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            values = {line.split(":", 1)[0]: int(line.split()[1]) * 1024 for line in f if line.split()[1:2]}
    except (OSError, ValueError):
        return None, None
    return values.get("MemTotal"), values.get("MemAvailable")


def _from_nvml() -> tuple[list[Gpu], dict[int, int]] | None:
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no driver: the same as no NVML
        return None
    try:
        gpus, procs = [], {}
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            gpus.append(Gpu(i, name.decode() if isinstance(name, bytes) else str(name), int(mem.total),
                            int(mem.free), int(mem.used)))
            for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                used = getattr(p, "usedGpuMemory", None)
                if isinstance(used, int):
                    procs[int(p.pid)] = procs.get(int(p.pid), 0) + used
        return gpus, procs
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def _run(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _from_nvidia_smi(command: str) -> tuple[list[Gpu], None] | None | str:
    from imageworks_models.settings import split_command

    try:
        base = split_command(command, setting="IMAGEWORKS_NVIDIA_SMI_BIN")
    except Exception:  # noqa: BLE001 - a malformed setting is no GPU reading, said in the note
        return "nvidia_smi_bin is not a command"
    out = _run([*base, "--query-gpu=index,name,memory.total,memory.used,memory.free", "--format=csv,noheader,nounits"])
    if out is None:
        return None
    gpus: list[Gpu] = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 5:
            continue
        try:
            index, name, total, used, free = int(parts[0]), parts[1], *(int(float(x)) for x in parts[2:])
        except ValueError:
            continue
        gpus.append(Gpu(index, name, total * MIB, free * MIB, used * MIB))
    return gpus, None


def _smi_processes(command: str) -> dict[int, int]:
    from imageworks_models.settings import split_command

    procs: dict[int, int] = {}
    apps = _run([*split_command(command, setting="IMAGEWORKS_NVIDIA_SMI_BIN"), "--query-compute-apps=pid,used_memory",
                 "--format=csv,noheader,nounits"]) or ""
    for line in apps.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit():
            try:
                procs[int(parts[0])] = procs.get(int(parts[0]), 0) + int(float(parts[1])) * MIB
            except ValueError:
                continue
    return procs


def inventory(settings) -> Inventory:
    """What this machine offers now (see the module docstring)."""
    total, available = _meminfo()
    inv = Inventory(ram_total_bytes=total, ram_available_bytes=available)
    found = _from_nvml()
    if found is not None:
        inv.gpus, inv._processes = found
        inv.source = "nvml"
        return inv
    found = _from_nvidia_smi(settings.nvidia_smi_bin)
    if isinstance(found, tuple):
        inv.gpus = found[0]
        inv.source, inv._command = "nvidia-smi", settings.nvidia_smi_bin
        if not inv.gpus:
            inv.note = "nvidia-smi listed no GPU"
    else:
        inv.note = found or "no GPU found (no NVML, no nvidia-smi)"
    return inv


def group_pids(pgid: int) -> list[int]:
    """Every process of process group ``pgid`` (a server started by the orchestrator leads its own)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                out.append(int(name))
        except (OSError, IndexError, ValueError):
            continue
    return out


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of these processes (``VmRSS``), summed."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError):
            continue
    return total
