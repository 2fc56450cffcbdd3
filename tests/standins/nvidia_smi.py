#!/usr/bin/env python3
"""A stand-in for ``nvidia-smi``'s query interface, for tests on machines without an NVIDIA GPU.

It answers the two queries ``fit/devices.py`` sends, in nvidia-smi's own output format
(``--format=csv,noheader,nounits``: one line per GPU or process, comma-space separated, MiB):

    nvidia-smi --query-gpu=index,name,memory.total,memory.used,memory.free --format=csv,noheader,nounits
    nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits

The machine it describes is read from the JSON file named by ``STANDIN_NVIDIA_SMI``:
``{"gpus": [{"name", "total_mib", "used_mib"}], "apps": [{"pid", "used_mib"}]}``. Any other query exits 2
(as nvidia-smi does for a field it does not know); a missing file makes it fail as nvidia-smi does when no
driver is loaded ("NVIDIA-SMI has failed...", exit 9).
"""

import json
import os
import sys


def main() -> int:
    path = os.environ.get("STANDIN_NVIDIA_SMI")
    try:
        machine = json.loads(open(path, encoding="utf-8").read()) if path else None
    except OSError:
        machine = None
    if machine is None:
        print("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", file=sys.stderr)
        return 9
    args = sys.argv[1:]
    if "--format=csv,noheader,nounits" not in args:
        print("standin: only --format=csv,noheader,nounits", file=sys.stderr)
        return 2
    if "--query-gpu=index,name,memory.total,memory.used,memory.free" in args:
        for i, gpu in enumerate(machine.get("gpus", [])):
            total, used = int(gpu["total_mib"]), int(gpu.get("used_mib", 0))
            print(f"{i}, {gpu['name']}, {total}, {used}, {total - used}")
        return 0
    if "--query-compute-apps=pid,used_memory" in args:
        for app in machine.get("apps", []):
            print(f"{app['pid']}, {app['used_mib']}")
        return 0
    print(f"Field in {args} is not a valid field to query.", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
