"""``registry.import_schema_meanwhile``: a download imports the entry schema (pydantic) while its transfer runs,
in a thread of its own, so the record at the end does not wait for it."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_schema_is_imported_in_a_background_thread_and_usable_once_imported_again():
    out = _run(
        "import sys, threading\n"
        "from imageworks_models.registry import import_schema_meanwhile\n"
        "assert 'pydantic' not in sys.modules\n"
        "import_schema_meanwhile()\n"
        "[t] = [t for t in threading.enumerate() if t.name == 'imageworks-import-schema']\n"
        "assert not t.daemon\n"
        "from imageworks_models.registry import schema\n"  # waits for the thread's import, never half a module
        "print(schema.check_name('qwen3-8b'), 'pydantic' in sys.modules)\n")
    assert out == "qwen3-8b True"


def test_nothing_is_started_when_the_schema_is_already_imported():
    out = _run(
        "import threading\n"
        "from imageworks_models.registry import import_schema_meanwhile, schema\n"
        "before = threading.active_count()\n"
        "import_schema_meanwhile()\n"
        "print(threading.active_count() - before)\n")
    assert out == "0"


def test_a_command_that_ends_while_the_import_runs_exits_with_its_own_status():
    """The thread is joined before the interpreter ends (a daemon one stopped in pydantic_core's native start-up
    aborted the process: exit status 134 instead of the command's)."""
    code = ("import sys, time\n"
            "from imageworks_models.registry import import_schema_meanwhile\n"
            "import_schema_meanwhile()\n"
            "time.sleep(float(sys.argv[1]))\n"
            "sys.exit(3)\n")
    for delay in ("0", "0.002", "0.004", "0.006", "0.008", "0.01", "0.015", "0.02"):
        result = subprocess.run([sys.executable, "-c", code, delay], capture_output=True, text=True, timeout=120)
        assert result.returncode == 3, (delay, result.returncode, result.stderr[-500:])
        assert "Fatal" not in result.stderr
