"""The llama.cpp backend: the orchestrator starts ``llama-server`` (or ``python -m llama_cpp.server``) on the
serving port (``command.py``) and asks it when it is ready (``probe.py``); the process lifecycle is the core's
(``imageworks_models.serving.activation``)."""

from __future__ import annotations

from typing import Any

from imageworks_models.api import Launch, Probe


class LlamacppBackend:
    name = "llamacpp"

    def launch(self, entry: dict[str, Any], *, settings) -> Launch:
        """The llama.cpp server command for ``entry`` (checked; see ``command.build_launch``)."""
        from .command import build_launch

        return build_launch(entry, settings=settings)

    def protected_options(self, flavour: str | None = None) -> dict[str, str]:
        """The options the launch sets itself (``extra_args`` and imported commands may not set them)."""
        from .command import LLAMA_SERVER, PROTECTED

        return dict(PROTECTED.get(flavour or LLAMA_SERVER, PROTECTED[LLAMA_SERVER]))

    def probe(self, endpoint: str, served_model_id: str, *, settings) -> Probe:
        """One readiness check: ``/health`` is 200 (llama-server) or absent (llama_cpp.server) and
        ``/v1/models`` lists the served id."""
        from .probe import probe

        return probe(endpoint, served_model_id)

    def health(self, *, settings) -> dict[str, Any]:
        """``{"backend", "url", "ok", "version", "loaded", "error", "hint"}`` for the server on the serving
        port (the active llama.cpp model's, when there is one)."""
        from imageworks_models.api import live_active, openai_health

        from .plugin import LLAMACPP_PORT
        from .probe import version

        active = live_active(settings.state_dir)
        port = settings.vllm_port if settings.single_port else LLAMACPP_PORT
        url = active["endpoint"] if active and active.get("backend") == self.name and active.get("endpoint") else \
            f"http://127.0.0.1:{port}/v1"
        return openai_health(url, backend=self.name, label="llama.cpp", version=version)
