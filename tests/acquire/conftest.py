"""Fixtures for the acquisition tests: the stand-in Hub (``hub``) and the stand-in Ollama store and server."""

from plugintests import use

use("hf", "ollama")

from hf_fixtures import HUB_TOKEN, hub  # noqa: E402,F401
from ollama_fixtures import legacy_files, ollama_server, store  # noqa: E402,F401
