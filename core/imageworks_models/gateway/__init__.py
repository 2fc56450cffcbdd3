"""The gateway: one OpenAI-compatible endpoint for every model, loading models on demand.

``imageworks-models gateway`` serves ``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings`` and
``/v1/models``; the request's ``model`` names a registry entry (name, alias, served id, or ``role:NAME``).

- ``fleet.py``: which models are resident, starting them through the orchestrator's own steps
  (:mod:`imageworks_models.serving.activation`: the backend's launch plan, S7 checks, the log launcher, readiness
  probes, whole-group stops), each on a port of its own; memory (fit estimate, learned footprints, or a
  budget), eviction, idle unload, per-model concurrency. No web framework is imported there.
- ``app.py``: the Starlette application (routes, streaming pass-through with httpx, keep-alives while loading,
  API key, Prometheus metrics) and running it under uvicorn. Imported only by the ``gateway`` command.

The gateway's state file (``_staging/gateway.json``), which ``gateway status`` and ``current-model`` read, is
:mod:`imageworks_models.live.gateway`. May import ``maintain``, ``serving``, ``fit``, ``live`` and everything
below; never ``export``, ``present``, the CLI or the GUI.
"""
