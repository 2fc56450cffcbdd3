"""Canonical capability keys and the synonyms accepted on read.

Files are written with canonical keys only; the earlier ImageWorks tool stored dozens of synonyms per
entry (``tool_call``, ``function-calling``, ``vl``, ...), which are folded into these on read.
"""

from __future__ import annotations

CANONICAL = ("text", "vision", "audio", "embedding", "tools", "thinking", "reasoning")

_SYNONYMS = {
    "text": ("text", "language", "chat", "completion", "llm"),
    "vision": ("vision", "visual", "multimodal", "mm", "image", "images", "vl", "vlm"),
    "audio": ("audio", "speech", "voice", "asr", "tts"),
    "embedding": ("embedding", "embeddings", "embed", "text-embedding", "representation"),
    "tools": ("tools", "tool", "tool_use", "tool-use", "tool_call", "tool-call", "toolcalls", "tool_calls",
              "toolchoice", "tool_choice", "function_call", "function-call", "function_calls",
              "function_calling", "function-calling", "function_tools", "functioncalling", "toolcalling",
              "auto_tool_choice"),
    "thinking": ("thinking", "think"),
    "reasoning": ("reasoning", "reason", "chain_of_thought", "cot", "reasoner", "o1", "o3", "r1", "deepseek"),
}

SYNONYMS: dict[str, str] = {syn: canon for canon, syns in _SYNONYMS.items() for syn in syns}


def canonical_name(key: str) -> str | None:
    """The canonical key for ``key`` (case and surrounding blanks ignored), or ``None`` if unknown."""
    return SYNONYMS.get(key.strip().lower()) if isinstance(key, str) else None


def normalize(value: object) -> tuple[object, list[str], dict[str, dict]]:
    """Fold a capability map (or list of names) into ``{canonical: bool}``, sorted canonically.

    A canonical key is true when any of its synonyms is true. A value may also be an object such as
    ``{"enabled": true, "target_long_edge": 448}`` (the earlier tool wrote these): its ``enabled`` flag
    is the capability and the rest is returned as that capability's options.

    Returns ``(folded, unknown_keys, options)``; a value of the wrong shape is returned unchanged (with
    no unknown keys) for the schema to reject.
    """
    if isinstance(value, list) and all(isinstance(k, str) for k in value):
        value = {k: True for k in value}
    if not isinstance(value, dict):
        return value, [], {}
    folded: dict[str, bool] = {}
    unknown: list[str] = []
    options: dict[str, dict] = {}
    for key, flag in value.items():
        canon = canonical_name(key)
        if canon is None:
            unknown.append(key)
            continue
        if isinstance(flag, dict) and isinstance(flag.get("enabled"), bool):
            extra = {k: v for k, v in flag.items() if k != "enabled"}
            if extra:
                options[canon] = options.get(canon, {}) | extra
            flag = flag["enabled"]
        if not isinstance(flag, bool):
            return value, [], {}  # let the schema name the bad value
        folded[canon] = folded.get(canon, False) or flag
    return {k: folded[k] for k in CANONICAL if k in folded}, unknown, options


def true_keys(caps: dict[str, bool] | None) -> list[str]:
    """The canonical capabilities that are set, in canonical order."""
    caps = caps or {}
    return [k for k in CANONICAL if caps.get(k)]
