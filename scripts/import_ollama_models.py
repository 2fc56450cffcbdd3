#!/usr/bin/env python3
"""Import the local Ollama store into the registry: `imageworks-download import-ollama`, kept at the path
the downloader runbook uses.

    uv run python scripts/import_ollama_models.py --dry-run
    uv run python scripts/import_ollama_models.py --backend ollama --location linux_wsl --deprecate-placeholders

Every option of `imageworks-download import-ollama --help` works here; without --dry-run it writes.
"""

import sys

from imageworks_models.cli import make_cli

if __name__ == "__main__":
    make_cli("imageworks-download").main(["import-ollama", *sys.argv[1:]],
                                         prog_name="scripts/import_ollama_models.py")
