"""Fixtures for the maintenance tests: the stand-in Ollama store and server, and the earlier tool's files."""

from plugintests import use

use("ollama")

from ollama_fixtures import legacy_files, ollama_server, store  # noqa: E402,F401
