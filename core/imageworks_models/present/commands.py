"""Every command of the three console scripts, declared once: name, the click command that runs it, its one-line
summary and its help (with examples), whether it writes, the shape of its ``--json``, and which runbook scripts show it.

The CLI builds ``--help``, the lazy command loading and the audit of writes from this table (without importing
any command module); the README's command list is generated from it (:mod:`imageworks_models.present.readme`); the
GUI names the CLI equivalent of each of its actions from it. Plain data: importing this module imports nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """One command.

    Attributes:
        name: what the user types (``list``, ``activate-model``).
        target: ``module:attribute`` of the click command, imported only when the command runs.
        summary: the line ``--help`` lists it with.
        writes: it changes the registry, model files or the live model: it takes ``--dry-run``, and with
            ``IMAGEWORKS_DEBUG=1`` its failures are kept in the audit trail.
        json: the README "JSON shapes" entry its ``--json`` prints (``None``: no ``--json``).
        views: the runbook scripts (``imageworks-loader``, ``imageworks-download``) that show it too; every command
            is in ``imageworks-models``.
        help: the command's ``--help`` text, with examples.
    """

    name: str
    target: str
    summary: str
    writes: bool
    json: str | None
    views: tuple[str, ...]
    help: str


TABLE: tuple[Command, ...] = (
    # --- Read the registry -----------------------------------------------------------------------------------
    Command('list', 'imageworks_models.cli.read:list_cmd',
            summary='List registry entries (installed ones by default).',
            writes=False, json='list', views=('imageworks-loader', 'imageworks-download'),
            help="""\
    Columns: name, display name, backend, roles, capabilities, lock status (locked, or DRIFT when a
    locked entry's files no longer match), aggregate-hash prefix, installed, active. --json prints
    every row with all fields, whatever --details says.

    \b
    Examples:
      imageworks-models list --include-non-installed
      imageworks-loader list --role vision
      imageworks-download list --json | jq -r '.[] | select(.quantization == "q4_k_m") | .name'
      imageworks-models list --fits
    """),
    Command('show', 'imageworks_models.cli.read:show_cmd',
            summary='Show one effective entry, with field provenance.',
            writes=False, json='show', views=(),
            help="""\
    NAME is an entry's logical name or one of its aliases.

    \b
    Examples:
      imageworks-models show qwen2.5-vl-7b-vllm-awq
      imageworks-models show qwen2.5-vl-7b-vllm-awq --provenance
      imageworks-models show qwen2.5-vl-7b-vllm-awq --json | jq .backend_config
    """),
    Command('select', 'imageworks_models.cli.read:select_cmd',
            summary='Resolve a name, alias or role to an endpoint.',
            writes=False, json='select', views=('imageworks-loader',),
            help="""\
    A role resolves to the entry with the highest role_priority that has every required capability.
    Exits 1 with a CapabilityError when no candidate has them.

    \b
    Examples:
      imageworks-loader select qwen2.5-vl-7b-vllm-awq
      imageworks-models select caption --require vision --json
    """),
    Command('list-roles', 'imageworks_models.cli.read:list_roles_cmd',
            summary='List roles and the entries that play them.',
            writes=False, json='list-roles', views=('imageworks-download',),
            help="""\
    \b
    Examples:
      imageworks-download list-roles --show-capabilities
      imageworks-models list-roles --json | jq 'keys'
    """),
    Command('stats', 'imageworks_models.cli.read:stats_cmd',
            summary='Counts by backend, format and quantization; disk use.',
            writes=False, json='stats', views=('imageworks-download',),
            help="""\
    \b
    Examples:
      imageworks-download stats
      imageworks-models stats --json | jq .disk_bytes
    """),
    Command('fit', 'imageworks_models.cli.read:fit_cmd',
            summary='Will a model fit this machine, and with how much context?',
            writes=False, json='fit', views=(),
            help="""\
    Estimates, from the model's headers alone, weights + KV cache (2 x layers x KV heads x head size x
    bytes x context x parallel; grouped-query, sliding-window and MLA attention counted) + the engine's
    overhead, against the free memory of the GPU it would use (NVML or nvidia-smi), or RAM for llama.cpp
    and Ollama without a GPU. Prints the verdict (fits, fits-with-offload, does-not-fit, unknown), the
    largest context that fits, and the engine flags that give it. After an activation the measured
    footprint is shown beside the estimate and used for it.

    \b
    Examples:
      imageworks-models fit qwen3-8b-vllm-awq
      imageworks-models fit qwen3-8b-vllm-awq --context 32768 --parallel 4 --kv-dtype fp8
      imageworks-models fit llama3.1-8b-ollama-gguf-q4_k_m --json
    """),
    Command('config', 'imageworks_models.cli.admin:config_cmd',
            summary='Show every resolved setting and where it came from.',
            writes=False, json='config', views=('imageworks-download',),
            help="""\
    Precedence: default < config file (imageworks.toml or [tool.imageworks]) < environment < flag.

    \b
    Examples:
      imageworks-download config
      imageworks-models config --json | jq -r .registry_dir.value
    """),
    Command('plugins', 'imageworks_models.cli.admin:plugins_cmd',
            summary='List plugins, their status and what they provide.',
            writes=False, json='plugins', views=(),
            help="""\
    A broken plugin shows as "broken" with the reason; every other command keeps working.
    IMAGEWORKS_PLUGINS (allowlist; empty = none) and IMAGEWORKS_DISABLE_PLUGINS control loading.

    \b
    Examples:
      imageworks-models plugins
      imageworks-models plugins --json | jq '.[] | select(.status == "broken")'
    """),
    Command('doctor', 'imageworks_models.cli.admin:doctor_cmd',
            summary='Report clashing names, ports and served ids.',
            writes=False, json='doctor', views=(),
            help="""\
    Reports names that differ only by case or Unicode form across the two layers, aliases that name another
    entry, two entries whose servers would claim one host and port, and two entries of one backend that
    publish one served model id. Exit code 1 when it finds any.

    \b
    Examples:
      imageworks-models doctor
      imageworks-models doctor --json | jq '.problems[] | select(.kind == "port")'
    """),
    # --- Integrity -------------------------------------------------------------------------------------------
    Command('verify', 'imageworks_models.cli.integrity:verify_cmd',
            summary="Check entries' files against the registry.",
            writes=True, json='verify', views=('imageworks-loader', 'imageworks-download'),
            help="""\
    With hashes (the loader's verify) every file is hashed, the aggregate digest is compared with the
    expected one, version_lock.last_verified is updated and each changed, missing, extra or renamed
    file is named. Without hashes (the downloader's verify) only the path, the file set and sizes are
    checked. Exit code: 0 all match, 2 any divergence or missing files, 1 a usage or read error.

    \b
    Examples:
      imageworks-loader verify qwen2.5-vl-7b-vllm-awq
      imageworks-loader verify --all --quick
      imageworks-download verify
      imageworks-download verify llama-3-8b-vllm-awq --fix-missing
      imageworks-models verify NAME --json | jq '.results[].changes'
    """),
    Command('lock', 'imageworks_models.cli.integrity:lock_cmd',
            summary='Lock entries; `lock export` writes models.lock.',
            writes=True, json='lock', views=('imageworks-loader',),
            help="""\
    A locked entry whose files drift is reported by verify (exit 2), flagged DRIFT by list and refused
    by activate-model. Without --set-expected the recorded manifest's aggregate becomes the expected one.

    `lock export` writes models.lock (or --output FILE): every locked entry with its source, resolved commit
    and every file's size and digest; `sync models.lock` reproduces them on another machine.

    \b
    Examples:
      imageworks-loader lock qwen2.5-vl-7b-vllm-awq --set-expected
      imageworks-loader lock qwen2.5-vl-7b-vllm-awq --set-expected --algorithm blake3
      imageworks-models lock NAME --dry-run --json
      imageworks-loader lock export --output models.lock
    """),
    Command('unlock', 'imageworks_models.cli.integrity:unlock_cmd',
            summary='Unlock entries.',
            writes=True, json='lock', views=('imageworks-loader',),
            help="""\
    verify still compares the files with the expected aggregate unless --clear-expected is given.

    \b
    Examples:
      imageworks-loader unlock qwen2.5-vl-7b-vllm-awq
      imageworks-loader unlock qwen2.5-vl-7b-vllm-awq --clear-expected
    """),
    Command('sync', 'imageworks_models.cli.integrity:sync_cmd',
            summary='Reproduce a models.lock here: fetch, verify, lock.',
            writes=True, json='sync', views=('imageworks-loader',),
            help="""\
    Entries already here are checked file by file against the lock's digests (ok, or drift). Missing ones
    are downloaded at the locked commit, every digest is verified, and the entry is locked; files that differ
    from the lock are reported as drift and the entry is left unlocked. Exit code 2 when anything drifted,
    1 on errors.

    \b
    Examples:
      imageworks-loader sync models.lock --dry-run
      imageworks-loader sync models.lock --json
    """),
    Command('check-updates', 'imageworks_models.cli.integrity:check_updates_cmd',
            summary='Show entries whose upstream revision moved.',
            writes=False, json='check-updates', views=(),
            help="""\
    Asks each entry's source (the Hub, for hf entries) which commit its revision points at now; local files
    are not touched. Entries without a recorded commit (scanned, not downloaded) are left out unless named.

    \b
    Examples:
      imageworks-models check-updates
      imageworks-models check-updates qwen2.5-vl-7b-instruct-vllm-awq --json
    """),
    # --- Acquire ---------------------------------------------------------------------------------------------
    Command('download', 'imageworks_models.cli.acquire:download_cmd',
            summary='Download a Hugging Face model and register it.',
            writes=True, json='download', views=('imageworks-download',),
            help="""\
    Resolves the revision to its commit (recorded as source.commit) and fetches every file from that
    commit; checks each file's sha256 against the Hub's LFS metadata (git blob id for small files)
    before it is moved into place; resumes interrupted downloads; uses aria2c for large files when it
    is on PATH (the token goes on its stdin, never its command line). Nothing is registered unless
    every file checked out.

    \b
    Examples:
      imageworks-download download "Qwen/Qwen2.5-VL-7B-Instruct-AWQ" --format awq --location linux_wsl
      imageworks-download download "Qwen/Qwen3-8B-GGUF" --weights Qwen3-8B-Q4_K_M.gguf --non-interactive
      imageworks-download download "owner/repo@main" --support-repo other/repo --include-optional
      imageworks-download download "owner/repo" --dry-run --json
      imageworks-download download "Qwen/Qwen3-8B-AWQ" --name qwen3-8b-awq-copy2
    """),
    Command('scan', 'imageworks_models.cli.acquire:scan_cmd',
            summary='Find models in a weights folder and record them.',
            writes=True, json='scan', views=('imageworks-download',),
            help="""\
    Finds Hugging Face model folders, the Hugging Face cache layout (models--org--name/snapshots/<commit>)
    and GGUF files; reads headers only (format, quantization, capabilities, chat template), names new
    entries <family>-<backend>-<format>[-<quant>] and records each with its manifest. Placeholders are
    skipped unless --include-testing. Exit code 1 if a model could not be read.

    \b
    Examples:
      imageworks-download scan --base ~/ai-models/weights --dry-run
      imageworks-download scan --base ~/ai-models/weights --update-existing --include-testing
      imageworks-download scan --base /mnt/models --format gguf --json | jq '.rows[] | select(.action=="add")'
    """),
    Command('ingest-local-hf', 'imageworks_models.cli.acquire:ingest_local_hf_cmd',
            summary='Scan HF-layout folders, refreshing known entries.',
            writes=True, json='scan', views=('imageworks-loader',),
            help="""\
    The same as `scan --update-existing`: what the loader runbook runs after `purge-imported`.

    \b
    Examples:
      imageworks-loader ingest-local-hf --root ~/ai-models/weights
      imageworks-loader ingest-local-hf --root ~/ai-models/weights --dry-run
    """),
    Command('discover-all', 'imageworks_models.cli.acquire:discover_all_cmd',
            summary='Discover models in folders, HF cache and stores.',
            writes=True, json='scan', views=('imageworks-loader',),
            help="""\
    Scans the weights folders, the Hugging Face cache and every other source's store (Ollama...).

    Entries already registered are refreshed (as ingest-local-hf does).

    \b
    Examples:
      imageworks-loader discover-all --hf-root ~/ai-models/weights
      imageworks-loader discover-all --dry-run --json
    """),
    Command('import-ollama', 'imageworks_models.cli.stores:import_ollama_cmd',
            summary="Import the local Ollama store's models.",
            writes=True, json='import-ollama', views=('imageworks-download',),
            help="""\
    Reads the store ($OLLAMA_MODELS, else ~/.ollama/models, else /usr/share/ollama/.ollama/models):
    manifests and config blobs only, so it is quick. Names entries by strategy A, <name>:<tag> ->
    <family>-ollama-gguf[-<quant>], and keeps the original name:tag as served_model_id. Tags of one
    model blob become one entry (the other tags are aliases). Re-running after a re-quant or rename
    updates entries in place; entries whose tags are gone are reported as stale (--prune-stale removes
    them). A bad manifest skips that model with a warning. A backup is taken before writing.
    Also runnable as `python scripts/import_ollama_models.py` with the same options.

    \b
    Examples:
      imageworks-download import-ollama --dry-run
      imageworks-download import-ollama --backend ollama --location linux_wsl --deprecate-placeholders
      imageworks-download import-ollama --prune-stale --json | jq '.rows[] | select(.action=="remove")'
    """),
    Command('rebuild-ollama', 'imageworks_models.cli.stores:rebuild_ollama_cmd',
            summary='Re-import the Ollama store; drop gone tags.',
            writes=True, json='import-ollama', views=('imageworks-loader',),
            help="""\
    The same as `import-ollama --prune-stale`: what the loader runbook runs after
    `purge-imported` to rediscover from scratch.

    \b
    Examples:
      imageworks-loader rebuild-ollama --location linux_wsl
      imageworks-loader rebuild-ollama --dry-run --json
    """),
    Command('backfill-ollama-paths', 'imageworks_models.cli.stores:backfill_ollama_paths_cmd',
            summary='Fill in files of Ollama entries with no path.',
            writes=True, json='import-ollama', views=('imageworks-download',),
            help="""\
    For each Ollama entry without files (such as the earlier tool's ollama:/name:tag entries), finds
    its tag in the store and records the model blob's path, size and manifest in the discovered
    layer. Entries whose tag is not in the store are listed as skipped. A backup is taken first.

    \b
    Examples:
      imageworks-download backfill-ollama-paths --dry-run
      imageworks-download backfill-ollama-paths
    """),
    # --- Maintain --------------------------------------------------------------------------------------------
    Command('reset-discovered', 'imageworks_models.cli.maintain:reset_discovered_cmd',
            summary='Forget discovered entries of one backend.',
            writes=True, json='prune-duplicates', views=('imageworks-download',),
            help="""\
    Removes the discovered-layer part of every entry of BACKEND (entries curated by hand keep their
    curated fields). A backup is taken first; restore-ollama --backup FILE puts it back.

    \b
    Examples:
      imageworks-download reset-discovered --backend ollama --dry-run
      imageworks-download reset-discovered --backend ollama
    """),
    Command('restore-ollama', 'imageworks_models.cli.maintain:restore_ollama_cmd',
            summary='Put back the Ollama entries of a backup.',
            writes=True, json='prune-duplicates', views=('imageworks-download',),
            help="""\
    Every Ollama entry of the backup's layer is replaced by the backup's version (added, updated or
    removed); other entries are not touched. The current layer is backed up first.

    \b
    Examples:
      imageworks-download restore-ollama --backup configs/backups/model_registry.discovered.TIME.reset-ollama.json
      imageworks-download restore-ollama --backup FILE
    """),
    Command('remove', 'imageworks_models.cli.maintain:remove_cmd',
            summary="Remove an entry's metadata, its files, or both.",
            writes=True, json='remove', views=('imageworks-download',),
            help="""\
    No flag (or --purge alone): remove the registry entry only. --delete-files: delete the files and
    keep the entry. --purge --delete-files: both. Refuses without --force and prints what it would
    do. Files outside the configured weights roots, or reached through a symlink, are never deleted.
    For an Ollama entry the files belong to Ollama: the plan shows the exact `ollama rm <served id>`
    to run; with --force it is done through Ollama's API, which keeps blobs other tags still use.

    \b
    Examples:
      imageworks-download remove llama-3-8b-vllm-awq --delete-files --force
      imageworks-download remove qwen3-8b-ollama-gguf-q4_k_m --purge --delete-files --force
      imageworks-download remove old-entry --dry-run
    """),
    Command('normalize-formats', 'imageworks_models.cli.maintain:normalize_formats_cmd',
            summary='Re-inspect entries; fix format, quant, size, checksum.',
            writes=True, json='normalize-formats', views=('imageworks-download',),
            help="""\
    Reads each entry's headers and builds its manifest (files unchanged since they were last hashed here
    are not read again, unless --rebuild), then shows one row per entry: format, quantization, size,
    file count and directory checksum, each "recorded → found" or "=". --apply writes the discovered
    layer after a backup. Fields set in the curated layer are reported, never overwritten; a checksum
    that changed is shown, but only `verify --accept` records new files for an entry.

    \b
    Examples:
      imageworks-download normalize-formats --dry-run
      imageworks-download normalize-formats --apply
      imageworks-download normalize-formats --rebuild --prune-missing --apply
    """),
    Command('prune-duplicates', 'imageworks_models.cli.maintain:prune_duplicates_cmd',
            summary='Remove entries that register one model twice.',
            writes=True, json='prune-duplicates', views=('imageworks-download',),
            help="""\
    Duplicates: the same files (aggregate digest or real path), or the same source, revision and format.
    Of each group the best is kept (curated by hand, locked, installed, not deprecated, shortest name); a
    duplicate with a curated part is shown as skip, to resolve by hand. Only registry entries change,
    never files; a backup is taken first.

    \b
    Examples:
      imageworks-download prune-duplicates --dry-run
      imageworks-download prune-duplicates --json | jq '.rows[] | select(.action == "remove") | .name'
    """),
    Command('prune-deprecated', 'imageworks_models.cli.maintain:prune_deprecated_cmd',
            summary='Remove entries flagged deprecated.',
            writes=True, json='prune-duplicates', views=('imageworks-download',),
            help="""\
    Both layers of each deprecated entry go (the flag is the decision); locked entries are kept and shown
    as skip. --placeholders-only limits it to placeholders: testing entries or entries with no files,
    such as the earlier tool's entries that import-ollama --deprecate-placeholders flagged.

    \b
    Examples:
      imageworks-download prune-deprecated --placeholders-only --dry-run
      imageworks-download prune-deprecated
    """),
    Command('purge-logical-only', 'imageworks_models.cli.maintain:purge_logical_only_cmd',
            summary='Remove entries with no files and no curated part.',
            writes=True, json='prune-duplicates', views=('imageworks-download',),
            help="""\
    Such entries are left behind by interrupted imports or removed files; entries described by hand in
    the curated layer are never touched.

    \b
    Examples:
      imageworks-download purge-logical-only --dry-run
      imageworks-download purge-logical-only
    """),
    Command('purge-imported', 'imageworks_models.cli.maintain:purge_imported_cmd',
            summary='Forget imported entries (rediscover from scratch).',
            writes=True, json='prune-duplicates', views=('imageworks-loader',),
            help="""\
    Removes the discovered-layer part of every entry imported from the providers (curated parts stay).
    A dry run unless --apply. Then repopulate with ingest-local-hf, rebuild-ollama or discover-all.

    \b
    Examples:
      imageworks-loader purge-imported --providers ollama --dry-run
      imageworks-loader purge-imported --apply --providers all
    """),
    # --- Serve -----------------------------------------------------------------------------------------------
    Command('activate-model', 'imageworks_models.cli.serve:activate_model_cmd',
            summary='Start or switch the live model, or --stop it.',
            writes=True, json='activate-model', views=('imageworks-loader',),
            help="""\
    vLLM and LMDeploy entries: starts the server (`vllm serve ...` / `lmdeploy serve api_server ...`, never
    through a shell) on the serving port (the entry's backend_config.port; CHAT_PROXY_VLLM_PORT with
    CHAT_PROXY_VLLM_SINGLE_PORT=1), first stopping the model that is active (its whole process group), then
    waits until /health answers and /v1/models lists the served id. State: _staging/active_vllm.json; server
    output: logs/<name>.log. Activating the model that is already live and ready changes nothing. If the
    server exits, never gets ready, or the port belongs to another process, it says why (with the log's last
    lines) and leaves nothing running. --stop without NAME stops whatever is active. A port held by a server
    imageworks has no record of (say, after _staging/active_vllm.json was deleted) is named with its pid and
    command line; --takeover stops it when it is a server this backend launches.

    llama.cpp entries: starts llama-server (or python -m llama_cpp.server) on the entry's GGUF file the same
    way. --backend llamacpp serves any GGUF entry with it, e.g. one imported from the Ollama store, from its
    blob and projector blob (read-only, never copied).

    Ollama entries: loads the model into the Ollama server (OLLAMA_HOST) and keeps it loaded
    (IMAGEWORKS_OLLAMA_KEEP_ALIVE); it is then the live model (current-model shows it; a running vLLM or
    LMDeploy server is stopped first) and --stop unloads it (keep_alive: 0). A locked entry whose files differ
    is refused (exit 2).
    A model the memory estimate says will not fit the free memory is refused, naming the shortfall and
    the largest context that fits (`imageworks-models fit NAME`); --force starts it anyway.

    \b
    Examples:
      imageworks-loader activate-model qwen2-vl-2b
      imageworks-loader activate-model qwen2-vl-2b --dry-run
      imageworks-loader activate-model --stop
      imageworks-loader activate-model qwen2-vl-2b --takeover
      imageworks-loader activate-model qwen3-8b-ollama-gguf-q4_k_m --json
      imageworks-loader activate-model qwen3-8b-ollama-gguf-q4_k_m --backend llamacpp
    """),
    Command('current-model', 'imageworks_models.cli.serve:current_model_cmd',
            summary='Show the live model, checked now.',
            writes=False, json='current-model', views=('imageworks-loader',),
            help="""\
    Reads _staging/active_vllm.json and checks that its server process is still the one started (same boot,
    pid and start time) and, unless --no-probe, that it answers /health and lists its served id. A model
    activated into Ollama is live while Ollama has it loaded (/api/ps). With nothing recorded, a process that
    holds the serving port anyway is named (pid, command line) with how to stop it. A record
    whose server is gone (crashed, killed, rebooted) is removed and reported as the previous model; nothing
    foreign is ever signalled. Models a running `imageworks-models gateway` serves are shown first (JSON:
    "gateway", a list). Exit code 0 whether or not a model is live.

    \b
    Examples:
      imageworks-loader current-model
      imageworks-loader current-model --json | jq -r .endpoint
    """),
    Command('health', 'imageworks_models.cli.serve:health_cmd',
            summary="Show backends' health and loaded models.",
            writes=False, json='health', views=(),
            help="""\
    Asks every backend that can report its health: Ollama (/api/version, /api/ps), vLLM on the serving port
    (/v1/models, /version), and LMDeploy: the active local server and every remote endpoint in the registry
    (backend_config.base_url, checked by backend_config.protocol: lmdeploy /health, openai /v1/models, triton
    /v2/health/ready). Exit code 1 when a backend named on the command line is down.

    \b
    Examples:
      imageworks-models health
      imageworks-models health ollama --json
    """),
    Command('gateway', 'imageworks_models.cli.gateway:gateway_cmd',
            summary='One OpenAI endpoint for every model, loaded on demand.',
            writes=False, json=None, views=(),
            help="""\
    Routes: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models, /metrics (Prometheus),
    /gateway/status. A request's "model" is an entry name, alias, served id, or role:NAME. A model that is
    not loaded is started (vLLM, LMDeploy, llama.cpp: its server on a port of its own, checked as
    activate-model checks it, its files verified first: IMAGEWORKS_GATEWAY_VERIFY) and the request is held
    until it is ready; several stay loaded while they fit (memory estimate, learned footprints, or
    IMAGEWORKS_GATEWAY_MEMORY_BUDGET), the least recently used idle one is stopped to make room, and a
    model unused for its idle_ttl is stopped. Ollama entries go to the Ollama server. SIGTERM or Ctrl-C
    stops every model the gateway started. Needs the `gateway` extra (pip install 'imageworks-models[gateway]').

    \b
    Examples:
      imageworks-models gateway
      imageworks-models gateway --port 9000
      imageworks-models gateway --host 0.0.0.0 --api-key-file ~/.config/imageworks/gateway.key
      imageworks-models gateway status --json
    """),
    Command('gui', 'imageworks_models.cli.admin:gui_cmd',
            summary='Start the GUI (the Models page) on 127.0.0.1.',
            writes=False, json=None, views=(),
            help="""\
    Serves on 127.0.0.1 unless --host names another address, which is refused without --allow-remote (the
    page has no login and can edit the registry, delete files and start or stop models). Needs the `gui`
    extra: pip install 'imageworks-models[gui]'.

    \b
    Examples:
      imageworks-models gui
      imageworks-models gui --port 8600
      imageworks-models gui --host 0.0.0.0 --allow-remote   # a trusted network only
    """),
    # --- Fleet -----------------------------------------------------------------------------------------------
    Command('export', 'imageworks_models.cli.fleet:export_cmd',
            summary='Write vllm-stack Helm values, llama-swap config, models.lock.',
            writes=True, json='export', views=(),
            help="""Write what a serving platform reads, from the registry: NAMES (default: every entry but testing and
    deprecated ones), narrowed by --role and --installed.

    --to production-stack: Helm values for the vLLM production stack (chart vllm-stack 0.1.12), one
    servingEngineSpec.modelSpec per vLLM entry, GPUs sized by the memory-fit estimate (export_gpu_bytes per
    GPU), the pinned commit, and the locked manifest digest as a label. --to llama-swap: a config.yaml with the
    commands activate-model would run (${PORT} for the port), ttl, aliases, env and groups. --to models.lock:
    the lockfile (as `lock export`). Entries that cannot run there are listed as skipped with the reason;
    credentials never reach the file; an existing file is replaced only with --force.

    \b
    Examples:
      imageworks-models export --to production-stack --installed -o values.yaml
      imageworks-models export --to production-stack --role chat --dry-run --json
      imageworks-models export --to llama-swap -o ~/llama-swap/config.yaml --force
      imageworks-models export --to models.lock -o models.lock
    """),
    Command('import', 'imageworks_models.cli.fleet:import_cmd',
            summary="Add a llama-swap config's models as entries.",
            writes=True, json='import', views=(),
            help="""\
    Each model's cmd is mapped to a backend (llama-server or python -m llama_cpp.server: llamacpp; vllm serve:
    vllm; lmdeploy serve api_server: lmdeploy); the model path, served name, context, GPU layers, projector
    and the like become backend_config fields; other options are kept as extra_args where the launch rules
    allow them, and the rest is reported (a protected option, --trust-remote-code, a credential in env, an
    unknown program). ttl, concurrencyLimit, persistent groups and preload become the entry's gateway
    settings. An existing entry of the same name is never overwritten.

    \b
    Examples:
      imageworks-models import --from llama-swap ~/llama-swap/config.yaml --dry-run
      imageworks-models import --from llama-swap config.yaml --json
    """),
)

COMMANDS: dict[str, Command] = {c.name: c for c in TABLE}
PROGRAMS = ("imageworks-models", "imageworks-loader", "imageworks-download")


def visible_in(prog: str) -> tuple[str, ...] | None:
    """The commands ``prog`` shows (``None``: all of them)."""
    if prog == "imageworks-models":
        return None
    return tuple(c.name for c in TABLE if prog in c.views)


def writes(name: str) -> bool:
    """Whether the command ``name`` writes (an unknown name, e.g. a plugin's command, does not count)."""
    command = COMMANDS.get(name)
    return command is not None and command.writes
