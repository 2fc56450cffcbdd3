"""The closed sets an option may name (backends, roles, formats, hash algorithms, providers), taken from
what the loaded plugins register and what the registry holds, and the "did you mean" for a typo.

The CLI checks every such option through :class:`imageworks_models.cli.output.Choice`; a GUI or library
caller can offer the same lists (:func:`valid`) and make the same check (:func:`check`).
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Iterable

# Formats the core and the bundled sources know (header readers, the Hub file rule); the registry may add more.
FORMATS = ("safetensors", "gguf", "pytorch", "awq", "gptq", "fp8", "bnb", "bitsandbytes", "compressed-tensors",
           "mxfp4", "exl2", "hqq", "mlx", "onnx")


def _entries(registry: Any) -> Iterable[dict[str, Any]]:
    return iter(registry) if registry is not None else ()


def backends(*, plugins: Any, registry: Any = None) -> list[str]:
    """Backend names: those plugins register, and those entries of the registry already use."""
    names = set(plugins.backends) if plugins is not None else set()
    names |= {str(e.get("backend")).lower() for e in _entries(registry) if e.get("backend")}
    return sorted(names)


def roles(*, plugins: Any = None, registry: Any = None) -> list[str]:
    """Roles entries play, and the capability names (``--role vision`` matches a capability)."""
    from imageworks_models.registry.capabilities import CANONICAL

    names = set(CANONICAL)
    for e in _entries(registry):
        names.update(str(r) for r in e.get("roles") or ())
    return sorted(names)


def formats(*, plugins: Any = None, registry: Any = None) -> list[str]:
    """Weight formats: the known ones and those the registry records."""
    names = set(FORMATS)
    names |= {str(e.get("format")).lower() for e in _entries(registry) if e.get("format")}
    return sorted(names)


def algorithms(*, plugins: Any, registry: Any = None) -> list[str]:
    """Hash algorithms the loaded plugins register (``sha256`` is built in)."""
    return sorted(plugins.hashers)


def providers(*, plugins: Any, registry: Any = None) -> list[str]:
    """Providers an entry may be imported from: the sources plugins register, those entries record, ``all``."""
    names = set(plugins.sources) if plugins is not None else set()
    names |= {str((e.get("source") or {}).get("provider")) for e in _entries(registry)
              if (e.get("source") or {}).get("provider")}
    return sorted(names) + ["all"]


def capabilities(*, plugins: Any = None, registry: Any = None) -> list[str]:
    """The canonical capability names (synonyms such as ``vl`` are folded into them when read)."""
    from imageworks_models.registry.capabilities import CANONICAL

    return list(CANONICAL)


def kv_dtypes(*, plugins: Any = None, registry: Any = None) -> list[str]:
    """KV cache dtypes the memory estimate knows (``fit --kv-dtype``)."""
    from imageworks_models.fit.estimate import KV_DTYPES

    return list(KV_DTYPES)


KINDS: dict[str, tuple[Callable[..., list[str]], bool, bool]] = {
    # kind -> (the valid values, whether plugins and whether the registry are needed to know them)
    "backend": (backends, True, True),
    "role": (roles, False, True),
    "format": (formats, False, True),
    "algorithm": (algorithms, True, False),
    "provider": (providers, True, True),
    "capability": (capabilities, False, False),
    "KV cache dtype": (kv_dtypes, False, False),
}


def resolve(kind: str, value: str) -> str:
    """``value`` with a synonym folded into its canonical name (``vl`` -> ``vision`` for capabilities)."""
    if kind == "capability":
        from imageworks_models.registry.capabilities import canonical_name

        return canonical_name(value) or value
    return value


def valid(kind: str, *, plugins: Any, registry: Any = None) -> list[str]:
    """The values option ``kind`` accepts (see :data:`KINDS`); pass ``None`` for what it does not need."""
    return KINDS[kind][0](plugins=plugins, registry=registry)


def _norm(value: str) -> str:
    return value.strip().lower().replace("_", "-")


def canonical(value: str, allowed: list[str]) -> str:
    """``value`` spelled as in ``allowed`` (``VLLM`` -> ``vllm``), or as given when it is not there."""
    return next((a for a in allowed if _norm(a) == _norm(value)), value.strip())


def check(kind: str, value: str, allowed: list[str]) -> str | None:
    """``None`` when ``value`` is one of ``allowed`` (case-insensitively, ``_`` as ``-``), else the one-line
    reason, with the valid values and the closest one ("did you mean").
    """
    norm = _norm
    if norm(value) in {norm(a) for a in allowed}:
        return None
    close = difflib.get_close_matches(norm(value), [norm(a) for a in allowed], n=1, cutoff=0.6)
    guess = ""
    if close:
        original = next(a for a in allowed if norm(a) == close[0])
        guess = f"; did you mean {original!r}?"
    return f"unknown {kind} {value!r} (valid: {', '.join(allowed) or 'none'}){guess}"
