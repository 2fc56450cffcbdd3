"""Read commands: list, show, select, list-roles, stats. None of them writes a source file."""

from __future__ import annotations

import click

from imageworks_models.cli.output import (Choice, common_options, emit_json, emit_json_rows, human_bytes, json_option, state, table,
                     wide_option)
from imageworks_models.cli.declare import declared


def _registry():
    return state().registry()


def _active():
    from imageworks_models.live.active import live_active

    return live_active(state().settings().state_dir)


_LOCK_CELL = {"unlocked": "-", "locked": "locked", "drift": "DRIFT"}
# On a narrow terminal: the columns hidden first (lowest value first), and those that may wrap onto more lines.
_LIST_DROP = ("PATH", "SERVED ID", "LOCATION", "DISPLAY NAME", "HASH", "INSTALLED", "SIZE", "QUANT", "FORMAT",
              "CAPABILITIES", "ROLES", "MAX CTX", "NEEDS")
_LIST_FOLD = ("ROLES", "CAPABILITIES", "PATH", "DISPLAY NAME", "SERVED ID")


@declared("list")
@click.option("--role", type=Choice("role"),
              help="Only entries playing this role (or having this capability, e.g. vision).")
@click.option("--backend", type=Choice("backend"), help="Only entries of this backend (vllm, ollama, lmdeploy, ...).")
@click.option("--include-non-installed", is_flag=True, help="Also entries whose files are not on disk.")
@click.option("--include-testing", is_flag=True, help="Also testing and placeholder entries.")
@click.option("--details", is_flag=True, help="More columns: format, quantization, size, location, path.")
@click.option("--fits", is_flag=True, help="Add the memory-fit verdict of each entry on this machine (see `fit`).")
@wide_option
@json_option
@common_options
def list_cmd(role, backend, include_non_installed, include_testing, details, fits, as_json):
    from imageworks_models.present.views import list_rows

    registry = _registry()
    active = _active()
    rows, hidden = list_rows(registry, role=role, backend=backend, include_non_installed=include_non_installed,
                             include_testing=include_testing, active_name=active and active.get("name"))
    if fits:
        from imageworks_models.fit import fit_all
        from imageworks_models.fit.devices import inventory

        verdicts = fit_all([registry.get(r["name"]) for r in rows], settings=state().settings(),
                           inventory=inventory(state().settings()))
        for r in rows:
            f = verdicts[r["name"]]
            r["fit"] = {"verdict": f.verdict, "total_bytes": f.total_bytes, "context": f.context,
                        "largest_context": f.largest_context, "device": f.device}
    if as_json:
        emit_json_rows(rows)
        return
    headers = ["NAME", "DISPLAY NAME", "BACKEND", "ROLES", "CAPABILITIES", "LOCK", "HASH", "INSTALLED", "ACTIVE"]
    if details:
        headers += ["FORMAT", "QUANT", "SIZE", "LOCATION", "SERVED ID", "PATH"]
    if fits:
        headers += ["FITS", "NEEDS", "MAX CTX"]
    out = []
    for r in rows:
        line = [r["name"], r["display_name"] or "", r["backend"], ",".join(r["roles"]) or "-",
                ",".join(r["capabilities"]) or "-", _LOCK_CELL[r["lock_status"]], r["hash_prefix"] or "-",
                "yes" if r["installed"] else "no", "yes" if r["active"] else ""]
        if details:
            line += [r["format"] or "-", r["quantization"] or "-", human_bytes(r["size_bytes"]),
                     r["location"] or "-", r["served_model_id"] or "-", r["path"] or "-"]
        if fits:
            line += [r["fit"]["verdict"], human_bytes(r["fit"]["total_bytes"]), r["fit"]["largest_context"] or "-"]
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


@declared("show")
@click.argument("name")
@click.option("--provenance", is_flag=True, help="Show which layer (curated, discovered, default) each field came from.")
@wide_option
@json_option
@common_options
def show_cmd(name, provenance, as_json):
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


@declared("select")
@click.argument("target")
@click.option("--require", "require", multiple=True, type=Choice("capability", comma=True),
              help="Required capabilities, comma-separated (vision,tools,...); repeatable.")
@json_option
@common_options
def select_cmd(target, require, as_json):
    from imageworks_models.serving.selection import select

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


@declared("list-roles")
@click.option("--show-capabilities", is_flag=True, help="Show each entry's capabilities too.")
@wide_option
@json_option
@common_options
def list_roles_cmd(show_capabilities, as_json):
    from imageworks_models.present.views import roles

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


@declared("stats")
@wide_option
@json_option
@common_options
def stats_cmd(as_json):
    from imageworks_models.present.views import stats

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


@declared("fit")
@click.argument("name")
@click.option("--context", type=click.IntRange(min=1), default=None, metavar="TOKENS",
              help="Tokens per sequence (default: the entry's configured context, else the model's maximum).")
@click.option("--parallel", type=click.IntRange(min=1), default=1, metavar="N", help="Sequences served at once.")
@click.option("--kv-dtype", default=None, type=Choice("KV cache dtype", metavar="T"),
              help="KV cache dtype: auto (fp16/bf16), fp8, q8_0, q4_0, f32.")
@click.option("--gpu", type=click.IntRange(min=0), default=None, metavar="I",
              help="The GPU to check (default: the one with the most free memory).")
@json_option
@common_options
def fit_cmd(name, context, parallel, kv_dtype, gpu, as_json):
    from imageworks_models.fit import fit

    st = state()
    try:
        result, inv = fit(name, context=context, parallel=parallel, kv_dtype=kv_dtype, gpu=gpu,
                          settings=st.settings())  # plugins load only if the headers must be read now
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if as_json:
        emit_json({**result.as_dict(), "inventory": inv.as_dict()})
        return
    r = result
    click.echo(f"{r.name} ({r.backend}): {r.verdict}")
    click.echo(f"  {r.reason}")
    if r.weights_bytes is not None:
        click.echo(f"  weights   {human_bytes(r.weights_bytes):>10}")
        per = f" ({r.kv_bytes_per_token:,.0f} B/token)" if r.kv_bytes_per_token else ""
        click.echo(f"  KV cache  {human_bytes(r.kv_bytes):>10}   context {r.context} x {r.parallel}, "
                   f"{r.kv_dtype}{per}")
        click.echo(f"  overhead  {human_bytes(r.overhead_bytes):>10}")
        click.echo(f"  total     {human_bytes(r.total_bytes):>10}   of {human_bytes(r.available_bytes)} "
                   f"available on {r.device or '-'}")
    if r.measured:
        m = r.measured
        click.echo(f"  measured  {human_bytes(m.get('bytes')):>10}   at context {m.get('context')} on "
                   f"{m.get('device')}, loaded in {m.get('load_seconds')} s ({m.get('measured_at')}); "
                   "the total above starts from it")
    if r.largest_context is not None:
        click.echo(f"  largest context that fits: {r.largest_context}")
    if r.flags:
        click.echo(f"  engine flags: {' '.join(r.flags)}")
    held = {k: v for k, v in inv.as_dict()["ours_bytes"].items()}
    if held:
        click.echo("  the live model holds " + ", ".join(f"{human_bytes(v)} on {k}" for k, v in held.items())
                   + " (counted as available: activating another model stops it)")
    if not inv.gpus:
        click.echo(f"note: {inv.note or 'no GPU found'}", err=True)
