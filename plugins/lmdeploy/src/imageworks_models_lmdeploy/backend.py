"""The LMDeploy backend: the orchestrator starts ``lmdeploy serve api_server`` on the serving port
(``command.py``); entries with a ``base_url`` are remote endpoints, checked over HTTP and never started here
(``checks.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imageworks_models.api import Launch, Probe


class LmdeployBackend:
    name = "lmdeploy"

    def launch(self, entry: dict[str, Any], *, settings) -> Launch:
        """The ``lmdeploy serve api_server`` command for ``entry`` (checked; see ``command.build_launch``)."""
        from .command import build_launch

        return build_launch(entry, settings=settings)

    def protected_options(self, flavour: str | None = None) -> dict[str, str]:
        """The options the launch sets itself (``extra_args`` and imported commands may not set them)."""
        from .command import PROTECTED

        return dict(PROTECTED)

    def probe(self, endpoint: str, served_model_id: str, *, settings) -> Probe:
        """One readiness check: ``/health`` is 200 and ``/v1/models`` lists the served id."""
        from .checks import probe

        return probe(endpoint, served_model_id)

    def health(self, *, settings) -> list[dict[str, Any]]:
        """One row per remote LMDeploy/Triton endpoint in the registry, plus the orchestrated LMDeploy server
        when it is the active model: ``{"backend", "name", "url", "ok", "version", "loaded", "error", "hint"}``."""
        from imageworks_models.api import live_active
        from imageworks_models.api import ImageworksError
        from imageworks_models.api import open_registry

        from .checks import probe, remote_health

        rows = []
        if Path(settings.registry_dir).is_dir():  # no registry yet: no remote endpoints to check
            try:
                entries = list(open_registry(settings))
            except ImageworksError as exc:  # a broken registry must not look like "nothing to check"
                entries = []
                rows.append({"backend": self.name, "url": None, "ok": False, "version": None, "loaded": [],
                             "error": "cannot read the remote endpoints: " + "; ".join(exc.lines()), "hint": exc.hint})
            rows += [remote_health(e) for e in entries
                     if e.get("backend") == self.name and (e.get("backend_config") or {}).get("base_url")]
        active = live_active(settings.state_dir)
        if active and active.get("backend") == self.name and active.get("endpoint"):
            result = probe(active["endpoint"], active.get("served_model_id") or active["name"])
            rows.insert(0, {"backend": self.name, "name": active["name"], "url": active["endpoint"],
                            "ok": result.ready, "version": None,
                            "loaded": [{"model": active.get("served_model_id")}] if result.ready else [],
                            "error": None if result.ready else f"{active['name']}: {result.detail}",
                            "hint": None if result.ready else f"read {active.get('log')}"})
        return rows
