"""Asking an OpenAI-compatible server (vLLM's) whether it is ready: ``/health`` then ``/v1/models``."""

from __future__ import annotations

from imageworks_models.records import Probe

TIMEOUT = (0.5, 2.0)  # connect, read: a probe must never hold an activation past its deadline


def root_of(endpoint: str) -> str:
    return endpoint[:-3] if endpoint.endswith("/v1") else endpoint


def served_ids(session, endpoint: str) -> list[str]:
    """The ids ``GET <endpoint>/models`` lists (raises ``requests`` errors, ``ValueError`` for bad JSON)."""
    response = session.get(f"{endpoint}/models", timeout=TIMEOUT, allow_redirects=False)
    response.raise_for_status()
    return [m.get("id") for m in response.json().get("data") or [] if isinstance(m, dict)]


def probe(endpoint: str, served_model_id: str) -> Probe:
    """Ready when ``/health`` answers 200 and ``/v1/models`` lists ``served_model_id``."""
    import requests

    with requests.Session() as session:
        session.trust_env = False  # a proxy from the environment must not stand between us and localhost
        try:
            health = session.get(f"{root_of(endpoint)}/health", timeout=TIMEOUT, allow_redirects=False)
            if health.status_code != 200:
                return Probe(False, f"/health answered {health.status_code}")
            ids = served_ids(session, endpoint)
        except requests.ConnectionError:
            return Probe(False, "connection refused")
        except requests.Timeout:
            return Probe(False, "no answer within 2s")
        except (requests.RequestException, ValueError) as exc:
            return Probe(False, f"/v1/models failed: {type(exc).__name__}")
    if served_model_id not in ids:
        return Probe(False, f"/v1/models lists {', '.join(map(str, ids)) or 'nothing'}, not {served_model_id}")
    return Probe(True, f"serving {served_model_id}")


def version(endpoint: str) -> str | None:
    """``GET /version`` (vLLM's), or ``None``."""
    import requests

    try:
        response = requests.get(f"{root_of(endpoint)}/version", timeout=TIMEOUT, allow_redirects=False)
        return response.json().get("version") if response.ok else None
    except (requests.RequestException, ValueError, AttributeError):
        return None
