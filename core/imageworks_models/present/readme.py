"""The README's generated parts: the command list (from :mod:`imageworks_models.present.commands`) and the settings
table (from ``settings.SPECS``), each between ``<!-- generated: NAME -->`` and ``<!-- /generated: NAME -->``.

    uv run python -m imageworks_models.present.readme --write    # after changing a command or a setting
    uv run python -m imageworks_models.present.readme --check    # exit 1 if README.md is out of date

tests/architecture/test_readme_generated.py runs the check.
"""

from __future__ import annotations

import re
from pathlib import Path


def commands_table() -> str:
    """Every command: what it does, whether it writes, its ``--json`` shape, which runbook scripts show it."""
    from imageworks_models.present.commands import TABLE

    lines = ["| command | what it does | writes | `--json` | also in |", "|---|---|---|---|---|"]
    for c in TABLE:
        shape = f"[`{c.json}`](#json-shapes)" if c.json else "-"
        also = ", ".join(f"`{v}`" for v in c.views) or "-"
        lines.append(f"| `{c.name}` | {c.summary} | {'yes (`--dry-run`)' if c.writes else 'no'} | {shape} | {also} |")
    return "\n".join(lines) + "\n"


def _shown_default(spec) -> str:
    if spec.shown is not None:
        return spec.shown
    value = spec.default({}, {})
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, dict)):
        return ", ".join(map(str, value)) if value else "none"
    return str(value)


def settings_table() -> str:
    """Every setting: its environment variable, its default and what it means."""
    from imageworks_models.settings import SPECS

    lines = ["| setting | environment | default | meaning |", "|---|---|---|---|"]
    for spec in SPECS:
        env = f"`{spec.env}`" if spec.env else "(config file only)"
        meaning = spec.help.replace("|", "\\|")
        lines.append(f"| `{spec.key}` | {env} | `{_shown_default(spec)}` | {meaning} |")
    return "\n".join(lines) + "\n"


BLOCKS = {"commands": commands_table, "settings": settings_table}


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- generated: {name} -->\n)(.*?)(<!-- /generated: {name} -->)", re.S)


def stale(text: str) -> list[str]:
    """The blocks of README text ``text`` that are missing or differ from what the code generates."""
    out = []
    for name, make in BLOCKS.items():
        match = _pattern(name).search(text)
        if match is None or match.group(2) != make():
            out.append(name)
    return out


def render(text: str) -> str:
    """``text`` with every generated block made anew (a missing block stays missing: add its markers)."""
    for name, make in BLOCKS.items():
        text = _pattern(name).sub(lambda m, body=make(): m.group(1) + body + m.group(3), text)
    return text


if __name__ == "__main__":
    import sys

    readme = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("README.md")
    if sys.argv[1:2] == ["--write"]:
        readme.write_text(render(readme.read_text(encoding="utf-8")), encoding="utf-8")
    elif sys.argv[1:2] == ["--check"]:
        bad = stale(readme.read_text(encoding="utf-8"))
        if bad:
            sys.exit(f"{readme}: out of date: {', '.join(bad)}; run python -m imageworks_models.present.readme --write")
    else:
        sys.exit("usage: python -m imageworks_models.present.readme --write|--check [README.md]")
