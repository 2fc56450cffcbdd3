"""The Models page (Streamlit): the registry table with filters and fuzzy search, the action drawer for the
selected entry, the diff viewer, backend cards, the recent-actions log, and the downloader's tabs.

Every action calls the same core function as its CLI command, shows that command before it runs, and is
recorded in ``_staging/gui_registry_actions.json`` (and, for changes, the audit log). Widgets carry stable keys
(``search``, ``selected``, ``verify``...) so tests can drive the page with Streamlit's ``AppTest``.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
from typing import Any, Callable

import streamlit as st

from imageworks_models.errors import ImageworksError

CAP_ICONS = {"text": "📝", "vision": "👁️", "audio": "🔊", "embedding": "🔢", "tools": "🛠️", "thinking": "💭",
             "reasoning": "🧠"}
LOCK_ICONS = {"locked": "🔒", "unlocked": "", "drift": "⚠️ DRIFT"}
# The page's own script (an ``st.components.v2`` component: it runs in the page itself, no iframe). It binds the
# shortcut keys once per page, and on a big registry's first run it tells the server when the table's grid has
# drawn, so the rest of the page is built after the table is on screen, not while the browser is still painting it.
PAGE_JS = """
export default function (component) {
  const { data, setTriggerValue } = component;
  const doc = document;
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
  if (!(data && data.await_paint)) return;
  let stopped = false;
  const drawn = () => doc.querySelector('[data-testid="stDataFrame"] canvas');
  const wait = () => {
    if (stopped) return;
    if (!drawn()) { setTimeout(wait, 50); return; }
    // the canvas exists; two frames later the grid has drawn its first rows
    requestAnimationFrame(() => requestAnimationFrame(() => { if (!stopped) setTriggerValue('painted', true); }));
  };
  wait();
  return () => { stopped = true; };
}
"""


def cli_line(*args: str, prog: str = "imageworks-models") -> str:
    """The CLI equivalent of an action, quoted for a shell: plain ASCII, so it runs as pasted (a name or a
    path with other characters is quoted; the words around it are this module's own).

    Raises:
        ValueError: ``args[0]`` is not a command of the command table (:mod:`imageworks_models.present.commands`).
    """
    from imageworks_models.present.commands import COMMANDS

    if not args or args[0] not in COMMANDS:
        raise ValueError(f"{args[0] if args else '(nothing)'!r} is not a command of imageworks-models")
    return prog + " " + " ".join(shlex.quote(a) for a in args)


def _settings():
    from imageworks_models.settings import load_settings

    return load_settings()  # read every run: another process may have changed the environment's files


_PLUGINS: dict[Any, Any] = {}


def _plugins(settings):
    """The loaded plugins, kept per process for the settings that found them (entry points do not change while
    the GUI runs; `imageworks-models plugins` after installing one, then restart the GUI)."""
    from imageworks_models.pluginhost.manager import get_plugins

    key = (str(settings.registry_dir), str(getattr(settings, "cache_dir", "")))
    if key not in _PLUGINS:
        _PLUGINS[key] = get_plugins(settings)
    return _PLUGINS[key]


def run_action(action: str, cli: str | None, fn: Callable[[], Any], *, entry: str | None = None,
               spinner: str | None = None, failed: Callable[[Any], bool] | None = None) -> Any:
    """Show the CLI equivalent, run ``fn``, record the outcome in the GUI log and show it; returns ``fn``'s
    result, or ``None`` after an error (shown with its hint). ``failed(result)`` says when a result that did
    not raise is still a failure (a verify that found divergence: the CLI would exit 2). ``cli`` is ``None``
    for an action no command does (an edit): nothing is shown as a command then."""
    from imageworks_models.gui.actionlog import record_action

    settings = _settings()
    _ROWS.clear()  # an action may change what is installed without changing the registry files
    _STATS.clear()
    if cli:
        st.caption(f"CLI equivalent: `{cli}`")
    try:
        with st.spinner(spinner or f"{action}…"):
            result = fn()
    except ImageworksError as exc:
        record_action(settings.state_dir, operator=_operator(), action=action, entry=entry, cli=cli or "",
                      ok=False, detail=exc.message)
        st.error("\n\n".join(exc.lines()) + (f"\n\nhint: {exc.hint}" if exc.hint else ""))
        return None
    record_action(settings.state_dir, operator=_operator(), action=action, entry=entry, cli=cli or "",
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

_LOADED: dict[str, tuple[Any, Any]] = {}


def _layer_stamp(registry_dir) -> tuple:
    """What identifies the registry files' content cheaply: each top-level JSON file's inode, size, mtime."""
    out = []
    try:
        with os.scandir(registry_dir) as it:
            for d in it:
                if d.name.endswith(".json") and d.is_file(follow_symlinks=False):
                    s = d.stat(follow_symlinks=False)
                    out.append((d.name, s.st_ino, s.st_size, s.st_mtime_ns))
    except OSError:
        return ()
    return tuple(sorted(out))


def load_registry(settings):
    """The merged entries, their provenance and the layers; parsed again only when a registry file changed
    (an atomic write replaces the file: a new inode), so a rerun of the page does not re-read 2,000 entries."""
    from imageworks_models.registry import store_for

    key = str(settings.registry_dir)
    stamp = _layer_stamp(settings.registry_dir)
    cached = _LOADED.get(key)
    if cached is not None and stamp and cached[0] == stamp:
        return cached[1]
    layers = store_for(settings).load_layers()
    entries, provenance = layers.merged()
    if stamp and stamp == _layer_stamp(settings.registry_dir):  # unchanged while we read it
        _LOADED[key] = (stamp, (entries, provenance, layers))
    return entries, provenance, layers


_ROWS: dict[str, tuple[Any, float, list[dict[str, Any]]]] = {}
ROWS_TTL = 15.0  # whether files are present is read from disk; the page's own actions clear it at once


def all_rows(entries: dict[str, dict[str, Any]], settings, *, active_name: str | None) -> list[dict[str, Any]]:
    """``list --json``'s row of every entry, kept a few seconds for the same registry files and live model
    (a rerun, another tab), so typing in the search box does not stat 2,000 folders each time."""
    import time

    from imageworks_models.present.views import row

    key = str(settings.registry_dir)
    stamp = (_layer_stamp(settings.registry_dir), active_name, id(entries))
    cached = _ROWS.get(key)
    if cached is not None and cached[0] == stamp and time.monotonic() - cached[1] < ROWS_TTL:
        return cached[2]
    rows = [row(e, active_name=active_name) for e in entries.values()]
    _ROWS[key] = (stamp, time.monotonic(), rows)
    return rows


def registry_view(settings):
    """The loaded registry (:class:`~imageworks_models.registry.store.Registry`) over the entries
    :func:`load_registry` holds: name resolution and ``select`` without parsing the files again."""
    from imageworks_models.registry import store_for
    from imageworks_models.registry.store import Registry

    entries, provenance, layers = load_registry(settings)
    return Registry(directory=settings.registry_dir, entries=entries, store=store_for(settings), _layers=layers,
                    _provenance=provenance)


_INVENTORY: dict[str, tuple[float, Any]] = {}
INVENTORY_TTL = 10.0  # free GPU memory moves; a reading this old is still the right verdict's basis


def _inventory(settings):
    import time

    from imageworks_models.fit.devices import inventory

    key = str(settings.registry_dir)
    cached = _INVENTORY.get(key)
    if cached is None or time.monotonic() - cached[0] > INVENTORY_TTL:
        cached = (time.monotonic(), inventory(settings))
        _INVENTORY[key] = cached
    return cached[1]


def filtered_rows(entries: dict[str, dict[str, Any]], settings, *, active_name: str | None) -> list[dict[str, Any]]:
    """The table's rows: the sidebar's filters (as ``list``'s options, plus roles and lock status), then the
    search, ranked."""
    from imageworks_models.present.views import search

    backend = st.session_state.get("f_backend") or None
    include_non_installed = st.session_state.get("f_all", True)
    include_testing = st.session_state.get("f_testing", False)
    roles = set(st.session_state.get("f_roles") or [])
    lock = st.session_state.get("f_lock") or "any"
    rows = [r for r in all_rows(entries, settings, active_name=active_name)
            if (not backend or r["backend"] == backend) and (include_testing or not r["testing"])
            and (include_non_installed or r["installed"]) and (not roles or roles & set(r["roles"]))
            and (lock == "any" or r["lock_status"] == lock)]
    return search(rows, st.session_state.get("search") or "")


# What is live and installed next to the name: always in view beside the drawer, however narrow the window.
TABLE_ORDER = ("Logical Name", "Active?", "Installed?", "Display Name", "Backend", "Roles", "Capabilities", "Lock",
               "Hash")
TABLE_COLUMNS = {"Logical Name": st.column_config.TextColumn(width="medium"),
                 "Display Name": st.column_config.TextColumn(width="small"),
                 "Backend": st.column_config.TextColumn(width=70), "Roles": st.column_config.TextColumn(width=70),
                 "Capabilities": st.column_config.TextColumn(width=70), "Lock": st.column_config.TextColumn(width=40),
                 "Hash": st.column_config.TextColumn(width=80),
                 "Installed?": st.column_config.TextColumn(width=65),
                 "Active?": st.column_config.TextColumn(width=55)}


def table_rows(rows: list[dict[str, Any]], *, activating: str | None = None) -> list[dict[str, Any]]:
    return [{"Logical Name": r["name"], "Display Name": r["display_name"] or "", "Backend": r["backend"],
             "Roles": ", ".join(r["roles"]), "Capabilities": " ".join(CAP_ICONS.get(c, c) for c in r["capabilities"]),
             "Lock": LOCK_ICONS[r["lock_status"]], "Hash": r["hash_prefix"] or "", "Installed?": "✅" if r["installed"]
             else "✗", "Active?": "✅" if r["active"] else ("⏳" if r["name"] == activating else "")} for r in rows]


def _active_name(settings) -> str | None:
    from imageworks_models.live.active import live_active

    active = live_active(settings.state_dir)
    return active and active.get("name")


# --- page ----------------------------------------------------------------------------------------------


def render() -> None:
    if st.session_state.get("reload"):  # the sidebar's Reload was pressed: start over before anything is drawn
        _start_over()
    head, corner = st.columns([5, 1], vertical_alignment="bottom")
    head.title("🎯 Models")
    settings = _settings()
    try:
        entries, provenance, layers = load_registry(settings)
    except ImageworksError as exc:
        st.error("\n\n".join(exc.lines()) + (f"\n\nhint: {exc.hint}" if exc.hint else ""))
        st.sidebar.button("Reload", key="reload", help="Reload the registry (r)")
        return
    if corner.button("📥 Import from downloads", key="import_open", help="Give discovered entries a curated overlay"):
        st.session_state["import_dialog"] = True
    tabs = st.tabs(["📚 Browse & Manage", "📥 Download & Import", "🔧 Registry Maintenance", "⚙️ Advanced Operations"],
                   key="view", on_change="rerun")  # only the open tab's content runs: a fast first paint
    table_first = False
    if tabs[0].open:
        with tabs[0]:
            table_first = _browse(entries, provenance, settings)
    if tabs[1].open:
        with tabs[1]:
            _download_tab(settings)
    if tabs[2].open:
        with tabs[2]:
            _maintenance_tab(settings)
    if tabs[3].open:
        with tabs[3]:
            _advanced_tab(entries, settings)
    if not table_first:  # the filters (their defaults hold until then) come with the drawer, after the table
        _sidebar(entries)
    _page_script(awaiting_paint=table_first)
    if st.session_state.get("import_dialog"):
        _import_dialog(settings)


_PAGE_SCRIPT: list[Callable[..., Any]] = []


def _page_script(*, awaiting_paint: bool) -> None:
    """Mount :data:`PAGE_JS` (registered once per process): the shortcut keys, and while ``awaiting_paint``
    the signal that the table has drawn."""
    if not _PAGE_SCRIPT:
        _PAGE_SCRIPT.append(st.components.v2.component("imageworks_models_page", js=PAGE_JS))
    _PAGE_SCRIPT[0](key="page_script", data={"await_paint": awaiting_paint}, on_painted_change=_on_painted)


def _on_painted() -> None:
    """Nothing to do: the run the signal starts is not the session's first, so it draws the whole page."""


def _sidebar(entries: dict[str, dict[str, Any]]) -> None:
    """The filters (drawn after the table: ``filtered_rows`` reads their values from the session) and Reload."""
    sb = st.sidebar
    sb.text_input("Operator", key="operator", value=_operator())
    roles = sorted({r for e in entries.values() for r in e.get("roles") or ()})
    sb.multiselect("Roles", roles, key="f_roles")
    backends = sorted({e.get("backend") for e in entries.values() if e.get("backend")})
    sb.selectbox("Backend", [""] + backends, key="f_backend", format_func=lambda b: b or "(all)")
    sb.selectbox("Lock status", ["any", "locked", "unlocked", "drift"], key="f_lock")
    sb.toggle("Include testing models", key="f_testing", value=False)
    sb.toggle("Include not installed", key="f_all", value=True)
    sb.button("Reload", key="reload", help="Reload the registry (r)")  # handled at the top of render()


def _start_over() -> None:
    """Reload: the registry is read again (the caches check the files), and edits start over from the entries
    as they are now: the edit base and the form's fields; the health readings are taken again."""
    for key in [k for k in st.session_state if k in ("health", "edit_dialog") or str(k).startswith("edit_")]:
        del st.session_state[key]
    _HEALTH.clear()
    _GATEWAY.clear()
    _ROWS.clear()
    _STATS.clear()


def _on_table_select() -> None:
    picked = (st.session_state.get("table") or {}).get("selection", {}).get("rows") or []
    names = st.session_state.get("_table_names") or []
    if picked and picked[0] < len(names):
        st.session_state["selected"] = names[picked[0]]


def _browse(entries, provenance, settings) -> bool:
    """The table, the drawer beside it and what goes under them; returns whether this run sent the table alone
    (a big registry's first run), waiting for the browser to say it has drawn it."""
    from imageworks_models.units import human_bytes
    from imageworks_models.present.views import rows_csv

    active_name = _active_name(settings)
    job = _job()
    table_col, drawer_col = st.columns([2, 1], gap="medium")
    with table_col:
        st.text_input("Search", key="search", placeholder="fuzzy search over names and aliases (press f)")
        rows = filtered_rows(entries, settings, active_name=active_name)
        names = [r["name"] for r in rows]
        st.session_state["_table_names"] = names
        st.dataframe(table_rows(rows, activating=job and job["name"]), hide_index=True, width="stretch",
                     height=min(420, 35 * (len(rows) + 1) + 3), key="table", on_select=_on_table_select, selection_mode="single-row",
                     column_config=TABLE_COLUMNS, column_order=TABLE_ORDER)
        st.caption(f"{len(rows)} of {len(entries)} entries")
        # Only the session's first run: any later one (the page script's signal, a search typed meanwhile, the
        # fallback timer) draws the whole page, so no signal can be lost between runs.
        table_first = len(entries) > PAINT_TABLE_FIRST and not st.session_state.get("_table_sent")
        st.session_state["_table_sent"] = True
        if not table_first:  # with the drawer: the CSV of 2,000 rows is not what the first paint waits for
            st.download_button("Export table (CSV)", rows_csv(rows), file_name="models.csv", mime="text/csv",
                               key="export_csv", on_click="ignore")
    if table_first:
        # A big registry's first run: send the table alone, so the browser paints it before anything else
        # competes for the CPU; the page script (PAGE_JS) starts the next run, for the drawer, cards, diff and
        # log, once the grid has drawn. The fragment is the fallback should that signal never come.
        drawer_col.caption("Loading the action drawer…")
        st.fragment(_after_first_paint, run_every=PAINT_FALLBACK_S)()
        return True
    with drawer_col:
        if names:
            if st.session_state.get("selected") not in names:
                st.session_state["selected"] = names[0]
            st.selectbox("Selected model", names, key="selected")
            name = st.session_state["selected"]
            _drawer(entries[name], provenance.get(name, {}), settings, active_name=active_name)
        else:
            st.info("No entry matches the filters.")
    _live_watch(settings, active_name)
    with table_col:  # under the table, beside the drawer
        _backend_cards(entries, settings, active_name=active_name)
        st.markdown("**Diff viewer** (last change to each layer)")
        _diff_viewer(settings)
        st.markdown("**Recent actions**")
        _recent_actions(settings)
    with st.expander("Statistics"):
        s = _stats(entries, settings)
        cols = st.columns(4)
        for col, (label, key) in zip(cols, (("Entries", "entries"), ("Installed", "installed"),
                                            ("Locked", "locked"), ("Not installed", "not_installed"))):
            col.metric(label, s[key])
        st.caption(f"Disk: {human_bytes(s['disk_bytes'])}")  # the CLI's units (GiB); the JSON below keeps bytes
        st.json(s, expanded=False)
    if st.session_state.get("edit_dialog") in entries:
        _edit_dialog(entries[st.session_state["edit_dialog"]], settings)
    return False


_STATS: dict[str, tuple[Any, dict[str, Any]]] = {}


def _stats(entries, settings) -> dict[str, Any]:
    """``stats --json`` for the registry as loaded; computed again when the files change."""
    from imageworks_models.present.views import stats

    import time

    key, stamp = str(settings.registry_dir), (_layer_stamp(settings.registry_dir), id(entries))
    cached = _STATS.get(key)
    if cached is None or cached[0][0] != stamp or time.monotonic() - cached[0][1] > ROWS_TTL:
        cached = ((stamp, time.monotonic()), stats(entries.values()))
        _STATS[key] = cached
    return cached[1]


PAINT_TABLE_FIRST = 500  # entries; a smaller registry's page is quick in one run
PAINT_FALLBACK_S = 5.0  # the first run's table alone, at most this long, should the page script not report


def _after_first_paint() -> None:
    """Runs first inside the page's first run (nothing to do), then again after ``PAINT_FALLBACK_S`` should the
    page script not have started the next run by then: the rest of the page comes anyway."""
    ticks = st.session_state.get("_paint_ticks", 0) + 1
    st.session_state["_paint_ticks"] = ticks
    if ticks > 1:
        st.rerun(scope="app")


def _recent_actions(settings) -> None:
    from imageworks_models.gui.actionlog import read_actions

    actions = read_actions(settings.state_dir, limit=50)
    if actions:
        st.dataframe([{"Time": a["time"], "Operator": a["operator"], "Action": a["action"],
                       "Entry": a.get("entry") or "", "OK": "✅" if a["ok"] else "❌", "CLI": a["cli"]}
                      for a in actions], hide_index=True, width="stretch", height=240)
    else:
        st.caption("No actions yet.")


# --- the action drawer ------------------------------------------------------------------------------------


def _base(name: str, settings) -> str:
    """:func:`~imageworks_models.maintain.editing.base_of` from the layers this run loaded (the files as they are now)."""
    from imageworks_models.maintain.editing import fingerprint

    layers = load_registry(settings)[2]
    return fingerprint(layers.curated.get(name))


def _drawer(entry: dict[str, Any], prov: dict[str, str], settings, *, active_name: str | None) -> None:
    from imageworks_models.present.availability import availability
    from imageworks_models.registry.predicates import lock_status

    name = entry["name"]
    if st.session_state.get("edit_for") != name:  # the copy the user starts editing from
        st.session_state["edit_for"] = name
        st.session_state["edit_base"] = _base(name, settings)
    st.subheader(name)
    allowed = availability(entry, plugins=_plugins(settings), active_name=active_name)
    busy = _job() is not None
    c1, c2 = st.columns(2)
    c3, c4 = st.columns(2)
    if c1.button("Activate via proxy", key="activate", help=allowed["activate"] or "Start or switch the live model (a)",
                 disabled=bool(allowed["activate"]) or busy):
        st.session_state["confirm"] = ("activate", name)
    if c2.button("Stop", key="stop", help=allowed["stop"] or "Stop this model", disabled=bool(allowed["stop"]) or busy):
        st.session_state["confirm"] = ("stop", name)
    verify = c3.button("Verify hash", key="verify", help=allowed["verify"] or "Hash the files and compare",
                       disabled=bool(allowed["verify"]))
    toggle = c4.button("Toggle lock", key="toggle_lock", help=allowed["lock"] or "Lock or unlock (l)",
                       disabled=bool(allowed["lock"]))
    reasons = [f"{label}: {allowed[a]}" for a, label in (("activate", "Activate"), ("stop", "Stop"),
                                                          ("verify", "Verify"), ("lock", "Lock")) if allowed[a]]
    if reasons:
        st.caption("  \n".join(reasons))
    _flash(name)
    _job_panel(settings)
    _confirmations(name, settings)
    if verify:
        _verify(entry, settings)
    if toggle:
        from imageworks_models.integrity.verify import lock, unlock

        locked = lock_status(entry) != "unlocked"
        cmd = ("unlock", name) if locked else ("lock", name, "--set-expected", "--quick")
        done = run_action(cmd[0], cli_line(*cmd), (lambda: unlock([name], settings=settings)) if locked else (
            lambda: lock([name], set_expected=True, quick=True, settings=settings, plugins=_plugins(settings))),
            entry=name)
        if done is not None:
            st.success(f"{name} is now {'unlocked' if locked else 'locked'}")
            st.rerun()
    if st.button("✏️ Edit entry", key="edit_open", help="Edit the curated fields in a dialog"):
        from imageworks_models.maintain.editing import base_of as base_now

        for key in [k for k in st.session_state if str(k).startswith(f"edit_{name}_") or k == "edit_pending"]:
            del st.session_state[key]  # the form starts from the entry as it is now
        st.session_state["edit_base"] = base_now(name, settings=settings)
        st.session_state["edit_for"] = name
        st.session_state["edit_dialog"] = name
    source = "curated" if prov and "curated" in prov.values() else "discovered"
    if prov and set(prov.values()) >= {"curated", "discovered"}:
        source = "curated over discovered"
    st.markdown(f"**Provenance:** {source}  \n"
                f"**Download path:** `{(entry.get('download') or {}).get('path') or '-'}`  \n"
                f"**Served id:** `{entry.get('served_model_id') or name}`")
    from imageworks_models.serving.selection import select

    try:
        from imageworks_models.live.active import live_active

        choice = select(registry_view(settings), name, plugins=_plugins(settings), settings=settings,
                        active=live_active(settings.state_dir))
        endpoint = choice.endpoint
    except ImageworksError:
        endpoint = None
    st.code(f"endpoint: {endpoint or '-'}\nserved id: {entry.get('served_model_id') or name}", language="yaml")
    st.markdown("**Backend config**")
    config = {k: v for k, v in (entry.get("backend_config") or {}).items() if v not in (None, [], {})}
    st.code(json.dumps(config, indent=2), language="json")
    _fit(name, entry, settings)
    with st.expander("View JSON (with provenance)"):
        st.code(json.dumps(entry, indent=2, ensure_ascii=False), language="json")  # its copy button copies it
        st.code("\n".join(f"{k}: {v}" for k, v in sorted(prov.items())) or "(no fields)", language="yaml")


def _fit(name: str, entry: dict[str, Any], settings) -> None:
    """The memory-fit verdict (``imageworks-models fit NAME``), from the facts the registry holds."""
    try:
        from imageworks_models.fit import fit

        result, _ = fit(name, settings=settings, plugins=_plugins(settings), inventory=_inventory(settings),
                        registry=registry_view(settings))
    except (ImageworksError, ValueError) as exc:
        st.caption(f"Memory fit: cannot tell ({getattr(exc, 'message', exc)})")
        return
    icon = {"fits": "🟢", "does-not-fit": "🔴"}.get(result.verdict, "⚪")
    st.markdown(f"**Memory fit:** {icon} {result.verdict}  \n{result.reason}")
    st.caption(f"CLI equivalent: `{cli_line('fit', name)}`")


def _verify(entry: dict[str, Any], settings) -> None:
    from imageworks_models.integrity.verify import file_rows
    from imageworks_models.integrity.verify import verify as do_verify

    name = entry["name"]
    import time

    t0 = time.perf_counter()
    report = run_action("verify", cli_line("verify", name, "--quick"), lambda: do_verify(
        [name], quick=True, settings=settings, plugins=_plugins(settings)), entry=name,
        spinner="Verifying…", failed=lambda r: r.exit_code != 0)
    if report is None:
        return
    took = time.perf_counter() - t0
    r = report.results[0]
    (st.success if not r.failed and r.status != "error" else st.error)(
        f"verify {name}: {r.status}" + (f" ({r.note})" if r.note else ""))
    rows = file_rows(entry, r)
    st.caption(f"{r.files} file(s), {r.bytes:,} bytes, {r.hashed_files} hashed, {r.cached_files} unchanged since "
               f"hashed; took {took:.2f} s" + (f" ({r.algorithm})" if r.algorithm else ""))
    if rows:
        st.dataframe([{"File": x["path"], "Result": x["status"], "Expected": x["expected"] or "-",
                       "Actual": x["actual"] or "-", "Size": x["size"]} for x in rows], hide_index=True,
                     width="stretch", key="verify_files")


def _flash(name: str) -> None:
    for kind, text in st.session_state.pop("flash", []):
        getattr(st, kind)(text)


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
        _start_job(what, name, cli, settings)
        st.rerun()


# --- actions that take a while: run in a thread, the page polls the serving status -------------------------

_JOBS: dict[str, dict[str, Any]] = {}


def _job() -> dict[str, Any] | None:
    job_id = st.session_state.get("job")
    return _JOBS.get(job_id) if job_id else None


def _start_job(what: str, name: str, cli: str, settings) -> None:
    import threading
    import time
    import uuid

    from imageworks_models.serving.control import activate, deactivate

    job = {"what": what, "name": name, "cli": cli, "started": time.time(), "done": False, "result": None,
           "error": None, "operator": _operator()}
    fn = (lambda: activate(name, settings=settings)) if what == "activate" else \
        (lambda: deactivate(name, settings=settings))

    def work() -> None:
        try:
            job["result"] = fn()
        except ImageworksError as exc:
            job["error"] = exc
        except Exception as exc:  # noqa: BLE001 - shown on the page instead of dying silently in a thread
            job["error"] = exc
        finally:
            job["done"] = True

    job_id = uuid.uuid4().hex
    _JOBS[job_id] = job
    st.session_state["job"] = job_id
    st.caption(f"CLI equivalent: `{cli}`")
    threading.Thread(target=work, name=f"gui-{what}-{name}", daemon=True).start()


def _finish_job(settings) -> None:
    """Record the finished job in the action log and leave its outcome for the next run to show."""
    from imageworks_models.gui.actionlog import record_action

    job_id = st.session_state.pop("job", None)
    job = _JOBS.pop(job_id, None) if job_id else None
    _ROWS.clear()
    if job is None:
        return
    exc = job["error"]
    flash = [("caption", f"CLI equivalent: `{job['cli']}`")]
    if exc is None:
        result = job["result"] or {}
        record_action(settings.state_dir, operator=job["operator"], action=job["what"], entry=job["name"],
                      cli=job["cli"], ok=True)
        if job["what"] == "activate":
            flash.append(("success", f"✅ {job['name']} is active at {result.get('endpoint')}"))
        else:
            flash.append(("success", f"stopped {job['name']}" if result.get("stopped") else "nothing was running"))
    else:
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        record_action(settings.state_dir, operator=job["operator"], action=job["what"], entry=job["name"],
                      cli=job["cli"], ok=False, detail=message)
        lines = exc.lines() if isinstance(exc, ImageworksError) else [message]
        hint = getattr(exc, "hint", None)
        flash.append(("error", "\n\n".join(lines) + (f"\n\nhint: {hint}" if hint else "")))
    st.session_state["flash"] = flash


def _job_panel(settings) -> None:
    job = _job()
    if job is None:
        return
    import time

    from imageworks_models.serving.control import status as serving_status

    label = "Activating…" if job["what"] == "activate" else "Stopping…"
    now = serving_status(settings=settings, probe=False)
    status = f"{now['name']}: {now['status']}" if now.get("active") else "no model running"
    with st.status(f"{label} {job['name']}", state="running", expanded=True):
        st.write(f"{int(time.time() - job['started'])} s; serving status: {status}")
        st.caption(f"CLI equivalent: `{job['cli']}`")


def _live_watch(settings, rendered_active: str | None) -> None:
    """Keep the page true to what is live: while an action runs, poll it every second; otherwise check the
    live model and the gateway's state file every few seconds (another tab, the CLI, a request to the gateway).
    Any change reruns the whole page, so the table's Active column and the cards are never stale."""
    running = _job() is not None
    rendered_gateway = _gateway_stamp(settings)

    def watch() -> None:
        job = _job()
        if job is not None and job["done"]:
            _finish_job(settings)
            st.rerun(scope="app")
        if job is None and running:
            st.rerun(scope="app")
        if job is None and (_active_name(settings) != rendered_active or _gateway_stamp(settings) != rendered_gateway):
            st.rerun(scope="app")

    st.fragment(watch, run_every=1.0 if running else 3.0)()


def _json_field(label: str, value: Any, key: str) -> str:
    return st.text_area(label, json.dumps(value or {}, indent=2), key=key, height=100)


def _close_edit() -> None:
    st.session_state.pop("edit_dialog", None)
    st.session_state.pop("edit_pending", None)


@st.dialog("Edit entry", width="large", on_dismiss=_close_edit)
def _edit_dialog(entry: dict[str, Any], settings) -> None:
    _edit_form(entry, settings)


def _edit_form(entry: dict[str, Any], settings) -> None:
    from imageworks_models.maintain.editing import apply_edit, plan_edit
    from imageworks_models.registry.capabilities import CANONICAL

    name = entry["name"]
    k = f"edit_{name}_"
    st.markdown(f"**{name}**: saved to `model_registry.curated.json`")
    slots: dict[str, Any] = {}

    def slot(field: str) -> None:
        slots[field] = st.empty()  # the field's error goes right under it

    display = st.text_input("Display name", entry.get("display_name") or "", key=k + "display_name")
    slot("display_name")
    roles = st.text_input("Roles (comma-separated)", ", ".join(entry.get("roles") or []), key=k + "roles")
    slot("roles")
    caps = st.multiselect("Capabilities", list(CANONICAL),
                          [c for c in CANONICAL if (entry.get("capabilities") or {}).get(c)], key=k + "caps")
    slot("capabilities")
    served = st.text_input("Served model id", entry.get("served_model_id") or "", key=k + "served")
    slot("served_model_id")
    backend = st.text_input("Backend", entry.get("backend") or "", key=k + "backend")
    slot("backend")
    backend_config = _json_field("Backend config (JSON)", entry.get("backend_config"), k + "backend_config")
    slot("backend_config")
    metadata = _json_field("Metadata (JSON)", entry.get("metadata"), k + "metadata")
    slot("metadata")
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field, text in (("backend_config", backend_config), ("metadata", metadata)):
        from imageworks_models.errors import RegistryFileError
        from imageworks_models.registry.jsonio import loads_strict

        try:  # strict: NaN/Infinity, huge integers, deep nesting, lone surrogates, duplicate keys (B17)
            changes[field] = loads_strict((text or "{}").encode("utf-8", "surrogatepass"), field)
        except RegistryFileError as exc:
            errors[field] = f"not JSON (strict): {exc.message.split(': ', 1)[-1]}"
    changes.update({"display_name": display or None, "roles": [r.strip() for r in roles.split(",") if r.strip()],
                    "capabilities": {c: True for c in caps}, "served_model_id": served or None,
                    "backend": backend or None})
    for key in list(changes):  # only what the form actually changes
        if changes[key] == entry.get(key) or (changes[key] in (None, [], {}) and not entry.get(key)):
            del changes[key]
    preview, save = st.columns(2)
    previewing = preview.button("Preview changes", key="edit_preview")
    saving = save.button("Save to curated", key="edit_save")
    pending = st.session_state.get("edit_pending")
    if pending is not None and (pending["name"] != name or pending["changes"] != changes):
        pending = st.session_state["edit_pending"] = None  # the form changed after Save: ask again
    if not (previewing or saving or pending):
        return
    plan = plan_edit(name, changes, settings=settings, plugins=_plugins(settings))
    errors.update(plan.errors)
    if errors:  # next to each field; nothing is written
        for field, message in sorted(errors.items()):
            (slots.get(field) or st).error(f"{field}: {message}")
        st.session_state["edit_pending"] = None
        return
    st.dataframe([{"Field": f, "Old": json.dumps(o), "New": json.dumps(n)} for f, o, n in plan.diff],
                 hide_index=True)
    for warning in plan.warnings:  # what `imageworks-models doctor` would report after this save
        st.warning(f"Warning: {warning}")
    if (saving or pending) and not plan.diff:
        st.info("Nothing to save: the form matches the entry.")
        return
    if saving:
        st.session_state["edit_pending"] = {"name": name, "changes": changes}
        pending = st.session_state["edit_pending"]
    if not pending:
        return
    st.warning(f"Write these {len(plan.diff)} change(s) to the curated layer?")
    yes, no = st.columns(2)
    if no.button("Back to the form", key="edit_cancel"):
        st.session_state["edit_pending"] = None
        st.rerun(scope="fragment")
    if yes.button("Confirm save", key="edit_confirm", type="primary"):
        st.session_state["edit_pending"] = None
        done = run_action("edit", None, lambda: apply_edit(
            name, changes, base=st.session_state["edit_base"], settings=settings, plugins=_plugins(settings)),
            entry=name)
        if done is not None:
            from imageworks_models.maintain.editing import base_of

            st.session_state["edit_base"] = base_of(name, settings=settings)  # the next save builds on this one
            st.success(f"saved {len(done.diff)} field(s) of {name} to the curated layer")


# --- cards, diffs, import wizard --------------------------------------------------------------------------

_HEALTH: dict[str, tuple[float, dict[str, dict[str, Any]]]] = {}
HEALTH_TTL = 10.0


def backend_health(settings) -> dict[str, dict[str, Any]]:
    """Live status of each loaded backend (the plugins decide which there are: one card each).

    A backend the orchestrator starts itself (``activates``: vLLM, LMDeploy, llama.cpp) is read from the
    activation state, now: green or red for the active model's backend by its status, white for the others (they
    serve nothing from here). What a backend reports of itself over the network (``health``: an Ollama server and
    its loaded tags, remote endpoints) is asked for and kept ``HEALTH_TTL`` seconds; a local server's own row is
    left to the activation state, so a port nobody serves on is white, not red.

    Returns:
        ``{backend: {"ok": True | False | None, "detail": str, "loaded": [tag, ...]}}`` in the plugins' order.
    """
    import time

    from imageworks_models.serving.control import status as serving_status
    from imageworks_models.serving.control import health

    plugins = _plugins(settings)
    records = plugins.backends
    now = serving_status(settings=settings, probe=False)
    out: dict[str, dict[str, Any]] = {}
    for name, record in records.items():
        item = out[name] = {"ok": None, "detail": "", "loaded": []}
        if record.activates:
            if now["active"] and now.get("backend") == name:
                item["ok"] = now["status"] in ("ready", "starting")
                item["detail"] = f"active: {now['name']} ({now['status']})"
            else:
                item["detail"] = "no active model"
    key = str(settings.registry_dir)
    cached = _HEALTH.get(key)
    if cached is None or time.time() - cached[0] > HEALTH_TTL:
        try:
            rows = health(settings=settings, plugins=plugins, backends=list(records))
        except ImageworksError as exc:
            rows = [{"backend": name, "ok": False, "error": exc.message}
                    for name, record in records.items() if not record.activates]
        cached = (time.time(), rows)
        _HEALTH[key] = cached
    for r in cached[1]:
        item, record = out.get(r["backend"]), records.get(r["backend"])
        if item is None or (record.activates and not r.get("name")):
            continue  # the local server's row: the activation state above says more, without a probe
        if not r.get("name"):  # a server that loads models on request (Ollama): online/offline and its loaded tags
            tags = [m.get("name") or m.get("model") for m in r.get("loaded") or [] if isinstance(m, dict)]
            item["loaded"] = [t for t in tags if t]
            text = ("online" + (f" ({r['version']})" if r.get("version") else "") + "; loaded: " +
                    (", ".join(item["loaded"]) or "none")) if r["ok"] else f"offline: {r.get('error') or ''}"
        else:  # a remote endpoint
            text = f"{r.get('name') or r.get('url') or ''}: {'up' if r['ok'] else 'down'}"
        item["ok"] = r["ok"] if item["ok"] is None else item["ok"] and r["ok"]
        item["detail"] = f"{item['detail']}; {text}" if item["detail"] else text
    return out


_GATEWAY: dict[str, tuple[tuple, float, dict[str, Any]]] = {}
GATEWAY_TIMEOUT = 1.0  # seconds to wait for a running gateway's own report before reading its state file


def _gateway_stamp(settings) -> tuple:
    """The gateway state file's identity: the gateway rewrites it (atomically: a new inode) whenever a model
    starts or stops, so a change means the residents changed."""
    from imageworks_models.live.gateway import state_path

    try:
        s = os.stat(state_path(settings.state_dir))
    except OSError:
        return ()
    return (s.st_ino, s.st_size, s.st_mtime_ns)


def gateway_residents(settings) -> dict[str, Any]:
    """What ``imageworks-models gateway status`` shows (:func:`~imageworks_models.live.gateway.status_for`):
    whether the gateway runs, its URL, and its resident models with their state, memory and requests. Asked
    again when the gateway's state file changes, else kept ``HEALTH_TTL`` seconds (in-flight counts move)."""
    import time

    from imageworks_models.live.gateway import status_for

    key, stamp = str(settings.state_dir), _gateway_stamp(settings)
    cached = _GATEWAY.get(key)
    if cached is None or cached[0] != stamp or time.time() - cached[1] > HEALTH_TTL:
        cached = (stamp, time.time(), status_for(settings=settings, timeout=GATEWAY_TIMEOUT))
        _GATEWAY[key] = cached
    return cached[2]


def _gateway_card(settings) -> None:
    from imageworks_models.units import human_bytes

    info = gateway_residents(settings)
    with st.container(border=True):
        if not info["running"]:
            st.markdown("**⚪ gateway**  \nnot running")
            st.caption(f"CLI equivalent: `{cli_line('gateway', 'status')}`")  # one that returns when pasted
            return
        models = info["models"]
        st.markdown(f"**🟢 gateway**  \n{info['url']} · {len(models)} resident")
        lines = []
        for m in models:
            facts = [m.get("status") or "?"] + ([human_bytes(m["memory_bytes"])] if m.get("memory_bytes") else []) + \
                ([f"{m['in_flight']} in flight"] if m.get("in_flight") else [])
            lines.append(f"{m['name']} ({', '.join(facts)})")
        st.caption("Residents: " + ("; ".join(lines) if lines else "none") +
                   ("" if info.get("source") == "gateway" else " (from its state file)"))
        st.caption(f"CLI equivalent: `{cli_line('gateway', 'status')}`")


def _backend_cards(entries, settings, *, active_name: str | None) -> None:
    health = backend_health(settings)
    rows = all_rows(entries, settings, active_name=active_name)
    cols = st.columns(len(health) + 1)
    for col, backend in zip(cols, health):
        mine = [r for r in rows if r["backend"] == backend]
        status = health.get(backend)
        ok = status.get("ok") if status else None
        dot = "🟢" if ok else ("🔴" if ok is False else "⚪")  # white: nothing to be up (no active model, no remote)
        with col.container(border=True):
            n_installed = sum(r["installed"] for r in mine)
            st.markdown(f"**{dot} {backend}**  \n{n_installed} installed · {len(mine) - n_installed} not installed"
                        f" · {sum(r['locked'] for r in mine)} locked")
            if status and status.get("detail"):
                st.caption(status["detail"])
    with cols[-1]:
        _gateway_card(settings)


_DIFFS: dict[str, tuple[Any, dict[str, Any]]] = {}


def _last_changes(settings) -> dict[str, Any]:
    """``layerdiff.last_changes``, read again only when a layer file or the backups folder changed."""
    from imageworks_models.registry.layerdiff import last_changes

    backups = settings.registry_dir / "backups"
    try:
        seen = backups.stat().st_mtime_ns
    except OSError:
        seen = None
    key, stamp = str(settings.registry_dir), (_layer_stamp(settings.registry_dir), seen)
    cached = _DIFFS.get(key)
    if cached is None or cached[0] != stamp:
        cached = (stamp, last_changes(settings=settings))
        _DIFFS[key] = cached
    return cached[1]


def _diff_viewer(settings) -> None:
    for layer, change in _last_changes(settings).items():
        st.markdown(f"**{layer}** (against {change['backup'] or 'no backup yet'})")
        lines = [f"+ {n}" for n in change["added"]] + [f"- {n}" for n in change["removed"]]
        for name, d in change["changed"].items():
            lines.append(f"~ {name}")
            lines += [f"    + {k}" for k in d["added"]] + [f"    - {k}" for k in d["removed"]]
            lines += [f"    ~ {k}: {json.dumps(o)} → {json.dumps(n)}" for k, o, n in d["changed"]]
        st.code("\n".join(lines) or "(no change)", language="diff")


def _close_import() -> None:
    st.session_state.pop("import_dialog", None)


@st.dialog("Import from downloads", width="large", on_dismiss=_close_import)
def _import_dialog(settings) -> None:
    _import_wizard(settings)


def _import_wizard(settings) -> None:
    from imageworks_models.maintain.editing import apply_edit, discovered_only, fingerprint, plan_edit

    candidates = discovered_only(settings=settings)
    if not candidates:
        st.caption("Every discovered entry already has a curated overlay.")
        return
    st.caption("Discovered entries without a curated overlay: fill in what discovery cannot know, review, append.")
    by_name = {e["name"]: e for e in candidates}
    name = st.selectbox("Discovered entry", list(by_name), key="wizard_entry")
    entry = by_name[name]
    roles = st.text_input("Roles (comma-separated)", key="wizard_roles")
    roles_slot = st.empty()
    backend = st.text_input("Backend", entry.get("backend") or "", key="wizard_backend")
    backend_slot = st.empty()
    served = st.text_input("Served model id", entry.get("served_model_id") or "", key="wizard_served")
    served_slot = st.empty()
    changes = {"roles": [r.strip() for r in roles.split(",") if r.strip()], "backend": backend or None,
               "served_model_id": served or None}
    plan = plan_edit(name, changes, settings=settings, plugins=_plugins(settings))
    for field, slot in (("roles", roles_slot), ("backend", backend_slot), ("served_model_id", served_slot)):
        if field in plan.errors:
            slot.error(f"{field}: {plan.errors[field]}")
    others = {f: m for f, m in plan.errors.items() if f not in ("roles", "backend", "served_model_id")}
    for field, message in sorted(others.items()):
        st.error(f"{field}: {message}")
    st.markdown("**Summary**")
    st.json({"name": name, **{k: v for k, v in changes.items() if v}}, expanded=True)
    if st.button("Append to curated", key="wizard_apply", disabled=bool(plan.errors), type="primary"):
        done = run_action("import-discovered", None,
                          lambda: apply_edit(name, changes, base=fingerprint(None), settings=settings,
                                             plugins=_plugins(settings)), entry=name)
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
        from imageworks_models.acquire.download import download

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
        from imageworks_models.acquire.discovery import scan

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
        from imageworks_models.acquire.storeimport import import_store

        report = run_action("import-ollama", cli_line(*args), lambda: import_store(
            "ollama", backend=ol_backend or None, location=ol_location or None, dry_run=ol_dry,
            deprecate_placeholders=deprecate, settings=settings))
        if report is not None:
            _report(report)


CLEANUPS = ("prune-duplicates", "prune-deprecated", "purge-logical-only", "purge-imported", "reset-discovered",
            "restore-ollama", "backfill-ollama-paths")


def _maintenance_tab(settings) -> None:
    from imageworks_models.maintain import cleanup

    st.subheader("🔄 Normalize")
    apply = st.toggle("Apply (off: dry run)", key="nz_apply")
    rebuild = st.toggle("Rebuild (hash every byte)", key="nz_rebuild")
    prune = st.toggle("Prune missing", key="nz_prune")
    args = ["normalize-formats", "--apply" if apply else "--dry-run"] + (["--rebuild"] if rebuild else []) + \
        (["--prune-missing"] if prune else [])
    if st.button("Normalize", key="nz_go"):
        from imageworks_models.maintain.normalize import normalize_formats

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
        from imageworks_models.maintain.reset import reset_discovered, restore_backup
        from imageworks_models.acquire.storeimport import backfill_paths

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
        from imageworks_models.integrity.verify import verify

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
        from imageworks_models.maintain.reset import remove

        plan = run_action("remove", cli_line(*args), lambda: remove(
            target, delete_files=delete_files, purge=purge, force=True, settings=settings), entry=target)
        if plan is not None:
            for line in plan.done:
                st.write(line)
