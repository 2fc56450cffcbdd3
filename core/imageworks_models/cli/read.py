"""Read commands: list, show, select, list-roles, stats. None of them writes a source file."""

from __future__ import annotations

import click

from .output import (Choice, common_options, emit_json, emit_json_rows, human_bytes, json_option, state, table,
                     wide_option)


def _registry():
    return state().registry()


def _active():
    from ..activation import live_active  # a record whose server is gone is not active

    return live_active(state().settings().state_dir)


_LOCK_CELL = {"unlocked": "-", "locked": "locked", "drift": "DRIFT"}
# On a narrow terminal: the columns hidden first (lowest value first), and those that may wrap onto more lines.
_LIST_DROP = ("PATH", "SERVED ID", "LOCATION", "DISPLAY NAME", "HASH", "INSTALLED", "SIZE", "QUANT", "FORMAT",
              "CAPABILITIES", "ROLES")
_LIST_FOLD = ("ROLES", "CAPABILITIES", "PATH", "DISPLAY NAME", "SERVED ID")


@click.command("list")
@click.option("--role", type=Choice("role"),
              help="Only entries playing this role (or having this capability, e.g. vision).")
@click.option("--backend", type=Choice("backend"), help="Only entries of this backend (vllm, ollama, lmdeploy, ...).")
@click.option("--include-non-installed", is_flag=True, help="Also entries whose files are not on disk.")
@click.option("--include-testing", is_flag=True, help="Also testing and placeholder entries.")
@click.option("--details", is_flag=True, help="More columns: format, quantization, size, location, path.")
@wide_option
@json_option
@common_options
def list_cmd(role, backend, include_non_installed, include_testing, details, as_json):
    """List registry entries (installed ones by default).

    Columns: name, display name, backend, roles, capabilities, lock status (locked, or DRIFT when a
    locked entry's files no longer match), aggregate-hash prefix, installed, active. --json prints
    every row with all fields, whatever --details says.

    \b
    Examples:
      imageworks-models list --include-non-installed
      imageworks-loader list --role vision
      imageworks-download list --json | jq -r '.[] | select(.quantization == "q4_k_m") | .name'
    """
    from ..views import list_rows

    registry = _registry()
    active = _active()
    rows, hidden = list_rows(registry, role=role, backend=backend, include_non_installed=include_non_installed,
                             include_testing=include_testing, active_name=active and active.get("name"))
    if as_json:
        emit_json_rows(rows)
        return
    headers = ["NAME", "DISPLAY NAME", "BACKEND", "ROLES", "CAPABILITIES", "LOCK", "HASH", "INSTALLED", "ACTIVE"]
    if details:
        headers += ["FORMAT", "QUANT", "SIZE", "LOCATION", "SERVED ID", "PATH"]
    out = []
    for r in rows:
        line = [r["name"], r["display_name"] or "", r["backend"], ",".join(r["roles"]) or "-",
                ",".join(r["capabilities"]) or "-", _LOCK_CELL[r["lock_status"]], r["hash_prefix"] or "-",
                "yes" if r["installed"] else "no", "yes" if r["active"] else ""]
        if details:
            line += [r["format"] or "-", r["quantization"] or "-", human_bytes(r["size_bytes"]),
                     r["location"] or "-", r["served_model_id"] or "-", r["path"] or "-"]
        out.append(line)
    if rows:
        click.echo(table(headers, out, drop=_LIST_DROP, fold=_LIST_FOLD))
    notes = []
    if hidden["not_installed"]:
        notes.append(f"{hidden['not_installed']} not installed (add --include-non-installed)")
    if hidden["testing"]:
        notes.append(f"{hidden['testing']} testing (add --include-testing)")
    drift = [r["name"] for r in rows if r["lock_status"] == "drift"]
    if drift:
        verb = "y no longer matches its" if len(drift) == 1 else "ies no longer match their"
        click.echo(f"warning: {len(drift)} locked entr{verb} expected files: {', '.join(drift)} "
                   f"(see: imageworks-loader verify {drift[0]})", err=True)
    summary = f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'}"
    click.echo(summary + (f"; hidden: {', '.join(notes)}" if notes else ""), err=True)


@click.command("show")
@click.argument("name")
@click.option("--provenance", is_flag=True, help="Show which layer (curated, discovered, default) each field came from.")
@wide_option
@json_option
@common_options
def show_cmd(name, provenance, as_json):
    """Show one effective entry, with field provenance.

    NAME is an entry's logical name or one of its aliases.

    \b
    Examples:
      imageworks-models show qwen2.5-vl-7b-vllm-awq
      imageworks-models show qwen2.5-vl-7b-vllm-awq --provenance
      imageworks-models show qwen2.5-vl-7b-vllm-awq --json | jq .backend_config
    """
    import json

    registry = _registry()
    entry = registry.get(name)
    if not provenance:
        emit_json(entry)
        return
    prov = registry.provenance(entry["name"])
    if as_json:
        emit_json({"entry": entry, "provenance": prov})
        return
    rows = [(key, prov.get(key, "?"), json.dumps(value, ensure_ascii=False)[:100]) for key, value in entry.items()]
    click.echo(table(["FIELD", "FROM", "VALUE"], rows, fold=("VALUE",)))


@click.command("select")
@click.argument("target")
@click.option("--require", "require", multiple=True, type=Choice("capability", comma=True),
              help="Required capabilities, comma-separated (vision,tools,...); repeatable.")
@json_option
@common_options
def select_cmd(target, require, as_json):
    """Resolve a name, alias or role to an endpoint.

    A role resolves to the entry with the highest role_priority that has every required capability.
    Exits 1 with a CapabilityError when no candidate has them.

    \b
    Examples:
      imageworks-loader select qwen2.5-vl-7b-vllm-awq
      imageworks-models select caption --require vision --json
    """
    from ..selection import select

    st = state()
    registry = _registry()
    result = select(registry, target, require=require, plugins=st.plugins(), settings=st.settings(),
                    active=_active())
    if as_json:
        emit_json(result.as_dict())
        return
    d = result.as_dict()
    for key in ("name", "backend", "endpoint", "served_model_id", "capabilities", "active", "resolved_from", "role"):
        value = d[key]
        if key == "capabilities":
            value = ",".join(value) or "-"
        if value is not None:
            click.echo(f"{key}: {value}")
    if result.note:
        click.echo(f"note: {result.note}", err=True)


@click.command("list-roles")
@click.option("--show-capabilities", is_flag=True, help="Show each entry's capabilities too.")
@wide_option
@json_option
@common_options
def list_roles_cmd(show_capabilities, as_json):
    """List roles and the entries that play them, best first.

    \b
    Examples:
      imageworks-download list-roles --show-capabilities
      imageworks-models list-roles --json | jq 'keys'
    """
    from ..views import roles

    table_ = roles(_registry())
    if as_json:
        emit_json(table_)
        return
    rows = []
    for role, members in table_.items():
        for i, m in enumerate(members):
            row = [role if i == 0 else "", m["name"], "-" if m["priority"] is None else m["priority"], m["backend"],
                   "yes" if m["installed"] else "no"]
            if show_capabilities:
                row.append(",".join(m["capabilities"]) or "-")
            rows.append(row)
    headers = ["ROLE", "ENTRY", "PRIORITY", "BACKEND", "INSTALLED"] + (["CAPABILITIES"] if show_capabilities else [])
    click.echo(table(headers, rows, fold=("CAPABILITIES",)) if rows else "no roles defined")


@click.command("stats")
@wide_option
@json_option
@common_options
def stats_cmd(as_json):
    """Counts by backend, format and quantization; installed, locked; disk use.

    \b
    Examples:
      imageworks-download stats
      imageworks-models stats --json | jq .disk_bytes
    """
    from ..views import stats

    s = stats(_registry())
    if as_json:
        emit_json(s)
        return
    click.echo(f"entries: {s['entries']}  installed: {s['installed']}  not installed: {s['not_installed']}  "
               f"locked: {s['locked']}  disk: {human_bytes(s['disk_bytes'])}")
    click.echo()
    click.echo(table(["BACKEND", "ENTRIES", "INSTALLED", "LOCKED", "DISK"],
                     [(b, v["entries"], v["installed"], v["locked"], human_bytes(v["disk_bytes"]))
                      for b, v in s["by_backend"].items()]))
    for title, key in (("FORMAT", "by_format"), ("QUANTIZATION", "by_quantization")):
        click.echo()
        click.echo(table([title, "ENTRIES"], s[key].items()))
    if s["disk_bytes_by_location"]:
        click.echo()
        click.echo(table(["LOCATION", "DISK"], [(k, human_bytes(v)) for k, v in s["disk_bytes_by_location"].items()]))
