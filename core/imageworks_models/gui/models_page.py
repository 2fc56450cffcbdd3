"""The Models page (Streamlit): the registry table with filters and fuzzy search, the action drawer for the
selected entry, the diff viewer, backend cards, the recent-actions log, and the downloader's tabs.

Every action calls the same core function as its CLI command, shows that command before it runs, and is
recorded in ``_staging/gui_registry_actions.json`` (and, for changes, the audit log). Widgets carry stable keys
(``search``, ``selected``, ``verify``...) so tests can drive the page with Streamlit's ``AppTest``.
"""

from __future__ import annotations

import getpass
import json
import shlex
from typing import Any, Callable

import streamlit as st

from ..errors import ImageworksError

CAP_ICONS = {"text": "📝", "vision": "👁️", "audio": "🔊", "embedding": "🔢", "tools": "🛠️", "thinking": "💭",
             "reasoning": "🧠"}
LOCK_ICONS = {"locked": "🔒", "unlocked": "", "drift": "⚠️ DRIFT"}
BACKENDS = ("vllm", "lmdeploy", "ollama")
SHORTCUTS_JS = """
<script>
const doc = window.parent.document;
if (!doc.__imageworksKeys) {
  doc.__imageworksKeys = true;
  const click = (label) => {
    const button = [...doc.querySelectorAll('button')].find(b => b.innerText.trim() === label);
    if (button) button.click();
  };
  doc.addEventListener('keydown', (e) => {
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
    if (e.key === 'f') {
      const s = doc.querySelector('input[aria-label="Search"]');
      if (s) { s.focus(); e.preventDefault(); }
    }
    else if (e.key === 'r') click('Reload');
    else if (e.key === 'l') click('Toggle lock');
    else if (e.key === 'a') click('Activate via proxy');
  });
}
</script>
"""


def cli_line(*args: str) -> str:
    """The CLI equivalent of an action, quoted for a shell."""
    return "imageworks-models " + " ".join(shlex.quote(a) for a in args)


def _settings():
    from ..settings import load_settings

    return load_settings()  # read every run: another process may have changed the environment's files


def _plugins(settings):
    from ..plugins import get_plugins

    return get_plugins(settings)


def run_action(action: str, cli: str, fn: Callable[[], Any], *, entry: str | None = None,
               spinner: str | None = None, failed: Callable[[Any], bool] | None = None) -> Any:
    """Show the CLI equivalent, run ``fn``, record the outcome in the GUI log and show it; returns ``fn``'s
    result, or ``None`` after an error (shown with its hint). ``failed(result)`` says when a result that did
    not raise is still a failure (a verify that found divergence: the CLI would exit 2)."""
    from ..guilog import record_action

    settings = _settings()
    st.caption(f"CLI equivalent: `{cli}`")
    try:
        with st.spinner(spinner or f"{action}…"):
            result = fn()
    except ImageworksError as exc:
        record_action(settings.state_dir, operator=_operator(), action=action, entry=entry, cli=cli, ok=False,
                      detail=exc.message)
        st.error("\n\n".join(exc.lines()) + (f"\n\nhint: {exc.hint}" if exc.hint else ""))
        return None
    record_action(settings.state_dir, operator=_operator(), action=action, entry=entry, cli=cli,
                  ok=not (failed and failed(result)))
    return result


def _operator() -> str:
    name = st.session_state.get("operator")
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# --- data ----------------------------------------------------------------------------------------------


def load_registry(settings):
    from ..registry import store_for

    layers = store_for(settings).load_layers()
    entries, provenance = layers.merged()
    return entries, provenance, layers


def filtered_rows(entries: dict[str, dict[str, Any]], settings) -> list[dict[str, Any]]:
    from ..activation import live_active
    from ..views import list_rows, search

    active = live_active(settings.state_dir)
    rows, _ = list_rows(entries.values(), backend=st.session_state.get("f_backend") or None,
                        include_non_installed=st.session_state.get("f_all", True),
                        include_testing=st.session_state.get("f_testing", False),
                        active_name=active and active.get("name"))
    roles = st.session_state.get("f_roles") or []
    if roles:
        rows = [r for r in rows if set(roles) & set(r["roles"])]
    lock = st.session_state.get("f_lock") or "any"
    if lock != "any":
        rows = [r for r in rows if r["lock_status"] == lock]
    return search(rows, st.session_state.get("search") or "")


def table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"Logical Name": r["name"], "Display Name": r["display_name"] or "", "Backend": r["backend"],
             "Roles": ", ".join(r["roles"]), "Capabilities": " ".join(CAP_ICONS.get(c, c) for c in r["capabilities"]),
             "Lock": LOCK_ICONS[r["lock_status"]], "Hash": r["hash_prefix"] or "", "Installed?": "✅" if r["installed"]
             else "✗", "Active?": "✅" if r["active"] else ""} for r in rows]


# --- page ----------------------------------------------------------------------------------------------


def render() -> None:
    st.title("🎯 Models")
    settings = _settings()
    try:
        entries, provenance, layers = load_registry(settings)
    except ImageworksError as exc:
        st.error("\n\n".join(exc.lines()) + (f"\n\nhint: {exc.hint}" if exc.hint else ""))
        if st.sidebar.button("Reload", key="reload", help="Reload the registry (r)"):
            st.rerun()
        return
    _sidebar(entries)
    st.iframe(SHORTCUTS_JS, height=1)  # same-origin: its script binds the shortcut keys on the page
    tabs = st.tabs(["📚 Browse & Manage", "📥 Download & Import", "🔧 Registry Maintenance", "⚙️ Advanced Operations"])
    with tabs[0]:
        _browse(entries, provenance, settings)
    with tabs[1]:
        _download_tab(settings)
    with tabs[2]:
        _maintenance_tab(settings)
    with tabs[3]:
        _advanced_tab(entries, settings)


def _sidebar(entries: dict[str, dict[str, Any]]) -> None:
    sb = st.sidebar
    sb.text_input("Operator", key="operator", value=_operator())
    roles = sorted({r for e in entries.values() for r in e.get("roles") or ()})
    sb.multiselect("Roles", roles, key="f_roles")
    backends = sorted({e.get("backend") for e in entries.values() if e.get("backend")})
    sb.selectbox("Backend", [""] + backends, key="f_backend", format_func=lambda b: b or "(all)")
    sb.selectbox("Lock status", ["any", "locked", "unlocked", "drift"], key="f_lock")
    sb.toggle("Include testing models", key="f_testing", value=False)
    sb.toggle("Include not installed", key="f_all", value=True)
    if sb.button("Reload", key="reload", help="Reload the registry (r)"):
        # A reload starts edits over from the entries as they are now: the edit base and the form's fields.
        for key in [k for k in st.session_state if k == "health" or str(k).startswith("edit_")]:
            del st.session_state[key]
        st.rerun()


def _browse(entries, provenance, settings) -> None:
    from ..units import human_bytes
    from ..views import rows_csv, stats

    st.text_input("Search", key="search", placeholder="fuzzy search over names and aliases (press f)")
    rows = filtered_rows(entries, settings)
    st.dataframe(table_rows(rows), hide_index=True, width="stretch")
    st.caption(f"{len(rows)} of {len(entries)} entries")
    st.download_button("Export table (CSV)", rows_csv(rows), file_name="models.csv", mime="text/csv",
                       key="export_csv")
    names = [r["name"] for r in rows]
    if names:
        if st.session_state.get("selected") not in names:
            st.session_state["selected"] = names[0]
        st.selectbox("Selected model", names, key="selected")
        _drawer(entries[st.session_state["selected"]], provenance.get(st.session_state["selected"], {}), settings)
    else:
        st.info("No entry matches the filters.")
    _backend_cards(entries, settings)
    with st.expander("Diff viewer: last change to each layer"):
        _diff_viewer(settings)
    with st.expander("Recent actions"):
        from ..guilog import read_actions

        actions = read_actions(settings.state_dir, limit=50)
        if actions:
            st.dataframe([{"Time": a["time"], "Operator": a["operator"], "Action": a["action"],
                           "Entry": a.get("entry") or "", "OK": "✅" if a["ok"] else "❌", "CLI": a["cli"]}
                          for a in actions], hide_index=True, width="stretch")
        else:
            st.caption("No actions yet.")
    with st.expander("Statistics"):
        s = stats(entries.values())
        cols = st.columns(4)
        for col, (label, key) in zip(cols, (("Entries", "entries"), ("Installed", "installed"),
                                            ("Locked", "locked"), ("Not installed", "not_installed"))):
            col.metric(label, s[key])
        st.caption(f"Disk: {human_bytes(s['disk_bytes'])}")  # the CLI's units (GiB); the JSON below keeps bytes
        st.json(s, expanded=False)
    with st.expander("Import discovered entries"):
        _import_wizard(settings)


# --- the action drawer ------------------------------------------------------------------------------------


def _drawer(entry: dict[str, Any], prov: dict[str, str], settings) -> None:
    from ..editing import base_of
    from ..views import lock_status

    name = entry["name"]
    if st.session_state.get("edit_for") != name:  # the copy the user starts editing from
        st.session_state["edit_for"] = name
        st.session_state["edit_base"] = base_of(name, settings=settings)
    st.subheader(name)
    left, right = st.columns([3, 2])
    with left:
        c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
        if c1.button("Activate via proxy", key="activate", help="Start or switch the live model (a)"):
            st.session_state["confirm"] = ("activate", name)
        if c2.button("Stop", key="stop"):
            st.session_state["confirm"] = ("stop", name)
        verify = c3.button("Verify hash", key="verify")
        toggle = c4.button("Toggle lock", key="toggle_lock", help="Lock or unlock (l)")
        _confirmations(name, settings)
        if verify:
            from ..integrity import verify as do_verify

            report = run_action("verify", cli_line("verify", name, "--quick"), lambda: do_verify(
                [name], quick=True, settings=settings, plugins=_plugins(settings)), entry=name,
                spinner="Verifying…", failed=lambda r: r.exit_code != 0)
            if report is not None:
                r = report.results[0]
                (st.success if not r.failed and r.status != "error" else st.error)(
                    f"verify {name}: {r.status}" + (f" ({r.note})" if r.note else ""))
        if toggle:
            from ..integrity import lock, unlock

            locked = lock_status(entry) != "unlocked"
            cmd = ("unlock", name) if locked else ("lock", name, "--set-expected", "--quick")
            done = run_action(cmd[0], cli_line(*cmd), (lambda: unlock([name], settings=settings)) if locked else (
                lambda: lock([name], set_expected=True, quick=True, settings=settings, plugins=_plugins(settings))),
                entry=name)
            if done is not None:
                st.success(f"{name} is now {'unlocked' if locked else 'locked'}")
                st.rerun()
    with right:
        st.markdown(f"**Served id:** `{entry.get('served_model_id') or name}`  \n"
                    f"**Download path:** `{(entry.get('download') or {}).get('path') or '-'}`")
        from ..selection import select
        from ..registry import open_registry
        from ..activation import live_active

        try:
            choice = select(open_registry(settings), name, plugins=_plugins(settings), settings=settings,
                            active=live_active(settings.state_dir))
            endpoint = choice.endpoint
        except ImageworksError:
            endpoint = None
        st.code(f"endpoint: {endpoint or '-'}\nserved id: {entry.get('served_model_id') or name}", language="yaml")
        st.json(entry.get("backend_config") or {}, expanded=False)
    with st.expander("View JSON (with provenance)"):
        st.code(json.dumps(entry, indent=2, ensure_ascii=False), language="json")  # its copy button copies it
        st.dataframe([{"Field": k, "From": v} for k, v in sorted(prov.items())], hide_index=True)
    with st.expander("Edit entry"):
        _edit_form(entry, settings)


def _confirmations(name: str, settings) -> None:
    pending = st.session_state.get("confirm")
    if not pending or pending[1] != name:
        return
    what = pending[0]
    cli = cli_line("activate-model", name) if what == "activate" else cli_line("activate-model", name, "--stop")
    st.warning(f"Run `{cli}`?")
    yes, no = st.columns(2)
    if no.button("Cancel", key="confirm_no"):
        st.session_state.pop("confirm", None)
        st.rerun()
    if yes.button("Confirm", key="confirm_yes"):
        st.session_state.pop("confirm", None)
        from ..serving import activate, deactivate

        if what == "activate":
            result = run_action("activate", cli, lambda: activate(name, settings=settings), entry=name,
                                spinner="Activating…")
            if result is not None:
                st.success(f"✅ {name} is active at {result['endpoint']}")
        else:
            result = run_action("stop", cli, lambda: deactivate(name, settings=settings), entry=name)
            if result is not None:
                st.success(f"stopped {name}" if result.get("stopped") else "nothing was running")


def _json_field(label: str, value: Any, key: str) -> str:
    return st.text_area(label, json.dumps(value or {}, indent=2), key=key, height=100)


def _edit_form(entry: dict[str, Any], settings) -> None:
    from ..editing import apply_edit, plan_edit
    from ..registry.capabilities import CANONICAL

    name = entry["name"]
    k = f"edit_{name}_"
    display = st.text_input("Display name", entry.get("display_name") or "", key=k + "display_name")
    roles = st.text_input("Roles (comma-separated)", ", ".join(entry.get("roles") or []), key=k + "roles")
    caps = st.multiselect("Capabilities", list(CANONICAL),
                          [c for c in CANONICAL if (entry.get("capabilities") or {}).get(c)], key=k + "caps")
    served = st.text_input("Served model id", entry.get("served_model_id") or "", key=k + "served")
    backend = st.text_input("Backend", entry.get("backend") or "", key=k + "backend")
    backend_config = _json_field("Backend config (JSON)", entry.get("backend_config"), k + "backend_config")
    metadata = _json_field("Metadata (JSON)", entry.get("metadata"), k + "metadata")
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field, text in (("backend_config", backend_config), ("metadata", metadata)):
        try:
            changes[field] = json.loads(text or "{}")
        except ValueError as exc:
            errors[field] = f"not JSON: {exc}"
    changes.update({"display_name": display or None, "roles": [r.strip() for r in roles.split(",") if r.strip()],
                    "capabilities": {c: True for c in caps}, "served_model_id": served or None,
                    "backend": backend or None})
    for key in list(changes):  # only what the form actually changes
        if changes[key] == entry.get(key) or (changes[key] in (None, [], {}) and not entry.get(key)):
            del changes[key]
    preview, save = st.columns(2)
    previewing = preview.button("Preview changes", key="edit_preview")
    saving = save.button("Save to curated", key="edit_save")
    if previewing or saving:
        plan = plan_edit(name, changes, settings=settings)
        errors.update(plan.errors)
        if errors:  # field by field; nothing is written
            for field, message in sorted(errors.items()):
                st.error(f"{field}: {message}")
            return
        st.dataframe([{"Field": f, "Old": json.dumps(o), "New": json.dumps(n)} for f, o, n in plan.diff],
                     hide_index=True)
        if saving and not plan.diff:
            st.info("Nothing to save: the form matches the entry.")
        elif saving:
            done = run_action("edit", f"(edit {name} in model_registry.curated.json)", lambda: apply_edit(
                name, changes, base=st.session_state["edit_base"], settings=settings), entry=name)
            if done is not None:
                st.session_state.pop("edit_for", None)
                st.success(f"saved {len(done.diff)} field(s) of {name} to the curated layer")


# --- cards, diffs, import wizard --------------------------------------------------------------------------


def backend_health(settings) -> dict[str, dict[str, Any]]:
    """Live status per backend: vLLM from the activation state, Ollama from its API, remotes by HTTP."""
    from ..activation import current
    from ..serving import health

    out: dict[str, dict[str, Any]] = {}
    now = current(settings=settings, probe=False)
    out["vllm"] = {"ok": (now["status"] in ("ready", "starting")) if now["active"] else None,
                   "detail": f"active: {now['name']} ({now['status']})" if now["active"] else "no active model"}
    try:
        rows = health(settings=settings, backends=[b for b in ("ollama", "lmdeploy")
                                                   if b in _plugins(settings).backends])
    except ImageworksError as exc:
        rows = [{"backend": "ollama", "ok": False, "error": exc.message}]
    for r in rows:
        item = out.setdefault(r["backend"], {"ok": True, "detail": ""})
        item["ok"] = bool(item["ok"]) and r["ok"]
        label = r.get("name") or r.get("url") or ""
        item["detail"] = (item["detail"] + "; " if item["detail"] else "") + \
            f"{label}: {'up' if r['ok'] else 'down'}"
    return out


def _backend_cards(entries, settings) -> None:
    import time

    cached = st.session_state.get("health")
    if cached is None or time.time() - cached[0] > 30:
        cached = (time.time(), backend_health(settings))
        st.session_state["health"] = cached
    health = cached[1]
    cols = st.columns(len(BACKENDS))
    from ..views import installed, locked

    for col, backend in zip(cols, BACKENDS):
        mine = [e for e in entries.values() if e.get("backend") == backend]
        status = health.get(backend)
        ok = status.get("ok") if status else None
        dot = "🟢" if ok else ("🔴" if ok is False else "⚪")  # white: nothing to be up (no active model, no remote)
        col.markdown(f"**{dot} {backend}**  \n{sum(installed(e) for e in mine)} installed · "
                     f"{sum(not installed(e) for e in mine)} not installed · {sum(locked(e) for e in mine)} locked")
        if status and status.get("detail"):
            col.caption(status["detail"])


def _diff_viewer(settings) -> None:
    from ..layerdiff import last_changes

    for layer, change in last_changes(settings=settings).items():
        st.markdown(f"**{layer}** (against {change['backup'] or 'no backup yet'})")
        lines = [f"+ {n}" for n in change["added"]] + [f"- {n}" for n in change["removed"]]
        for name, d in change["changed"].items():
            lines.append(f"~ {name}")
            lines += [f"    + {k}" for k in d["added"]] + [f"    - {k}" for k in d["removed"]]
            lines += [f"    ~ {k}: {json.dumps(o)} → {json.dumps(n)}" for k, o, n in d["changed"]]
        st.code("\n".join(lines) or "(no change)", language="diff")


def _import_wizard(settings) -> None:
    from ..editing import apply_edit, discovered_only, fingerprint

    candidates = discovered_only(settings=settings)
    if not candidates:
        st.caption("Every discovered entry already has a curated overlay.")
        return
    by_name = {e["name"]: e for e in candidates}
    name = st.selectbox("Discovered entry", list(by_name), key="wizard_entry")
    entry = by_name[name]
    roles = st.text_input("Roles (comma-separated)", key="wizard_roles")
    backend = st.text_input("Backend", entry.get("backend") or "", key="wizard_backend")
    served = st.text_input("Served model id", entry.get("served_model_id") or "", key="wizard_served")
    changes = {"roles": [r.strip() for r in roles.split(",") if r.strip()], "backend": backend or None,
               "served_model_id": served or None}
    st.json({"name": name, **{k: v for k, v in changes.items() if v}}, expanded=True)
    if st.button("Append to curated", key="wizard_apply"):
        done = run_action("import-discovered", f"(append {name} to model_registry.curated.json)",
                          lambda: apply_edit(name, changes, base=fingerprint(None), settings=settings), entry=name)
        if done is not None:
            st.success(f"{name} now has a curated overlay")


# --- downloader tabs ----------------------------------------------------------------------------------------


def _report(report) -> None:
    data = report.as_dict()
    rows = data.get("rows") or data.get("results") or []
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch")
    st.caption(", ".join(f"{n} {a}" for a, n in (data.get("counts") or data.get("summary") or {}).items())
               + ("; dry run, nothing was written" if data.get("dry_run") else ""))


def _download_tab(settings) -> None:
    st.subheader("🌐 Download")
    spec = st.text_input("Model (owner/repo[@revision])", key="dl_spec")
    c1, c2, c3 = st.columns(3)
    fmt = c1.text_input("Format (awq, gguf, ...)", key="dl_format")
    location = c2.text_input("Location label", key="dl_location")
    weights = c3.text_input("Weights (comma-separated files)", key="dl_weights")
    support = st.text_input("Support repo", key="dl_support")
    optional = st.toggle("Include optional files", key="dl_optional")
    force = st.toggle("Force", key="dl_force")
    dry = st.toggle("Dry run", key="dl_dry", value=True)
    args = ["download", spec or "OWNER/REPO"] + (["--format", fmt] if fmt else []) + \
        (["--location", location] if location else []) + (["--weights", weights] if weights else []) + \
        (["--support-repo", support] if support else []) + (["--include-optional"] if optional else []) + \
        (["--force"] if force else []) + (["--dry-run"] if dry else [])
    st.caption(f"Command preview: `{cli_line(*args)}`")
    if st.button("Download", key="dl_go", disabled=not spec):
        from ..acquisition import download

        result = run_action("download", cli_line(*args), lambda: download(
            spec, format=fmt or None, location=location or None,
            weights=tuple(w.strip() for w in weights.split(",") if w.strip()), support_repo=support or None,
            include_optional=optional, force=force, dry_run=dry, settings=settings), spinner="Downloading…")
        if result is not None:
            st.json(result.as_dict())
    st.subheader("📁 Scan")
    base = st.text_input("Base folder", str(settings.weights_root), key="scan_base")
    update = st.toggle("Update existing", key="scan_update")
    testing = st.toggle("Include testing", key="scan_testing")
    fallback = st.text_input("Fallback format (only when detection fails)", key="scan_format")
    scan_dry = st.toggle("Dry run", key="scan_dry", value=True)
    args = ["scan", "--base", base] + (["--update-existing"] if update else []) + \
        (["--include-testing"] if testing else []) + (["--format", fallback] if fallback else []) + \
        (["--dry-run"] if scan_dry else [])
    if st.button("Scan", key="scan_go"):
        from ..discovery import scan

        report = run_action("scan", cli_line(*args), lambda: scan(
            [base], update_existing=update, include_testing=testing, fallback_format=fallback or None,
            dry_run=scan_dry, settings=settings))
        if report is not None:
            _report(report)
    st.subheader("🦙 Import Ollama")
    c1, c2 = st.columns(2)
    ol_backend = c1.text_input("Backend override", key="ol_backend")
    ol_location = c2.text_input("Location override", key="ol_location")
    ol_dry = st.toggle("Dry run", key="ol_dry", value=True)
    deprecate = st.toggle("Deprecate placeholders", key="ol_deprecate")
    args = ["import-ollama"] + (["--backend", ol_backend] if ol_backend else []) + \
        (["--location", ol_location] if ol_location else []) + \
        (["--deprecate-placeholders"] if deprecate else []) + (["--dry-run"] if ol_dry else [])
    if st.button("Import Ollama", key="ol_go"):
        from ..storeimport import import_store

        report = run_action("import-ollama", cli_line(*args), lambda: import_store(
            "ollama", backend=ol_backend or None, location=ol_location or None, dry_run=ol_dry,
            deprecate_placeholders=deprecate, settings=settings))
        if report is not None:
            _report(report)


CLEANUPS = ("prune-duplicates", "prune-deprecated", "purge-logical-only", "purge-imported", "reset-discovered",
            "restore-ollama", "backfill-ollama-paths")


def _maintenance_tab(settings) -> None:
    from .. import cleanup

    st.subheader("🔄 Normalize")
    apply = st.toggle("Apply (off: dry run)", key="nz_apply")
    rebuild = st.toggle("Rebuild (hash every byte)", key="nz_rebuild")
    prune = st.toggle("Prune missing", key="nz_prune")
    args = ["normalize-formats", "--apply" if apply else "--dry-run"] + (["--rebuild"] if rebuild else []) + \
        (["--prune-missing"] if prune else [])
    if st.button("Normalize", key="nz_go"):
        from ..normalize import normalize_formats

        report = run_action("normalize-formats", cli_line(*args), lambda: normalize_formats(
            apply=apply, rebuild=rebuild, prune_missing=prune, settings=settings))
        if report is not None:
            _report(report)
    st.subheader("🗑️ Purge / 🔨 Cleanup")
    which = st.selectbox("Command", CLEANUPS, key="cl_which")
    extra: list[str] = []
    if which == "prune-deprecated" and st.toggle("Placeholders only", key="cl_placeholders"):
        extra = ["--placeholders-only"]
    providers = st.text_input("Providers", "all", key="cl_providers") if which == "purge-imported" else "all"
    backend = st.text_input("Backend", "ollama", key="cl_backend") if which == "reset-discovered" else ""
    backups = sorted(str(p) for p in (settings.registry_dir / "backups").glob("*.json")) \
        if which == "restore-ollama" and (settings.registry_dir / "backups").is_dir() else []
    backup = st.selectbox("Backup", backups, key="cl_backup") if which == "restore-ollama" else None
    dry = st.toggle("Dry run", key="cl_dry", value=True)
    if which == "purge-imported":
        extra = ["--providers", providers]
    elif which == "reset-discovered":
        extra = ["--backend", backend]
    elif which == "restore-ollama":
        extra = ["--backup", backup or "FILE"]
    args = [which, *extra] + (["--apply"] if which == "purge-imported" and not dry else []) + \
        (["--dry-run"] if dry and which != "purge-imported" else [])
    if st.button("Run", key="cl_go", disabled=which == "restore-ollama" and not backup):
        from ..maintenance import reset_discovered, restore_backup
        from ..storeimport import backfill_paths

        fn = {"prune-duplicates": lambda: cleanup.prune_duplicates(dry_run=dry, settings=settings),
              "prune-deprecated": lambda: cleanup.prune_deprecated(placeholders_only=bool(extra), dry_run=dry,
                                                                   settings=settings),
              "purge-logical-only": lambda: cleanup.purge_logical_only(dry_run=dry, settings=settings),
              "purge-imported": lambda: cleanup.purge_imported(providers.split(","), dry_run=dry, settings=settings),
              "reset-discovered": lambda: reset_discovered(backend, dry_run=dry, settings=settings),
              "restore-ollama": lambda: restore_backup(backup, backend="ollama", dry_run=dry, settings=settings),
              "backfill-ollama-paths": lambda: backfill_paths("ollama", dry_run=dry, settings=settings)}[which]
        report = run_action(which, cli_line(*args), fn)
        if report is not None:
            _report(report)


def _advanced_tab(entries, settings) -> None:
    st.subheader("✅ Verify")
    names = st.multiselect("Entries (none: all with files)", sorted(entries), key="vf_names")
    fix = st.toggle("Auto-fix (mark missing files)", key="vf_fix")
    args = ["verify", *names] + ([] if names else ["--all"]) + ["--quick"] + (["--fix-missing"] if fix else [])
    if st.button("Verify", key="vf_go"):
        from ..integrity import verify

        report = run_action("verify", cli_line(*args), lambda: verify(
            names, all_entries=not names, quick=True, fix_missing=fix, settings=settings),
            failed=lambda r: r.exit_code != 0)
        if report is not None:
            _report(report)
    st.subheader("🗑️ Remove")
    target = st.selectbox("Entry", sorted(entries), key="rm_name") if entries else None
    mode = st.radio("Mode", ["metadata only", "files only", "purge (files and entry)"], key="rm_mode")
    delete_files = mode != "metadata only"
    purge = mode.startswith("purge")
    args = ["remove", target or "NAME"] + (["--delete-files"] if delete_files else []) + \
        (["--purge"] if purge else []) + ["--force"]
    sure = st.checkbox("I understand the files will be deleted", key="rm_sure") if delete_files else True
    if st.button("Remove", key="rm_go", disabled=not (target and sure)):
        from ..maintenance import remove

        plan = run_action("remove", cli_line(*args), lambda: remove(
            target, delete_files=delete_files, purge=purge, force=True, settings=settings), entry=target)
        if plan is not None:
            for line in plan.done:
                st.write(line)
