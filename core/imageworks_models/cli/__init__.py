"""The command line: one lazy click app, shown as three console scripts.

``imageworks-models`` has every command; ``imageworks-loader`` and ``imageworks-download`` show the
verbs their runbooks use, spelled as the runbooks spell them. Commands are imported only when run, and
their summary and help live in the command table (:mod:`imageworks_models.present.commands`), so ``--help``
imports no command module and no plugin. Plugin commands are listed from entry-point metadata (group
``imageworks_models.commands``). The top layer: may import everything; nothing imports it.
"""

from __future__ import annotations

import os
import sys

import click

from imageworks_models import __version__

# Exit codes, one meaning each (the README's table; tests/cli/test_cli_ux.py pins them).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_DIVERGED = 2  # verify found files that differ from the registry (the loader runbook's code)
EXIT_USAGE = 64  # sysexits.h EX_USAGE: the command line itself is wrong (click would say 2)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C

from imageworks_models.present.commands import COMMANDS, visible_in  # the one command table

class CliState:
    """Per-invocation state shared by commands: flags, and settings/registry resolved on first use."""

    def __init__(self, prog: str = "imageworks-models"):
        self.prog = prog
        self.flags: dict[str, object] = {}
        self._settings = None
        self._registry = None

    def settings(self):
        if self._settings is None:
            from imageworks_models.settings import load_settings

            self._settings = load_settings(flags=self.flags)
        return self._settings

    def plugins(self):
        from imageworks_models.pluginhost.manager import get_plugins

        return get_plugins(self.settings())

    def registry(self):
        """The effective registry, loaded once per invocation (option checks and the command share it)."""
        if self._registry is None:
            from imageworks_models.registry import store_for

            self._registry = store_for(self.settings()).load()
            # The registry lives until the command ends: moved out of the collector's generations, it is not
            # walked again on every burst of later allocations (the rows and JSON of `list --json` on 5,000
            # entries: ~85 ms frozen against ~120 ms not, in-process). Objects still free by refcount.
            import gc

            gc.freeze()
        return self._registry


class _Context(click.Context):
    def make_formatter(self) -> click.HelpFormatter:
        """click's help formatter, as wide as click makes it, found without importing shutil (which brings bz2 and
        lzma: ~2 ms of ``--help``) the way ``shutil.get_terminal_size`` finds it: $COLUMNS, else the terminal on
        the process's stdout, else 80."""
        width = self.terminal_width
        if width is None and click.formatting.FORCED_WIDTH is None:
            try:
                columns = int(os.environ.get("COLUMNS", ""))
            except ValueError:
                columns = 0
            if columns <= 0:
                try:
                    columns = os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
                except (AttributeError, ValueError, OSError):  # no stdout, or not a terminal
                    columns = 80
            width = max(min(columns, self.max_content_width or 80) - 2, 50)
        return self.formatter_class(width=width, max_width=self.max_content_width)


class LazyGroup(click.Group):
    context_class = _Context

    def __init__(self, *args, view: tuple[str, ...] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.view = view
        self._plugins_loaded = False

    def _visible(self, name: str) -> bool:
        return self.view is None or name in self.view

    def _plugin_command_names(self, ctx: click.Context) -> dict[str, tuple[str, str | None]]:
        if "imageworks.plugin_commands" in ctx.meta:  # list_commands and format_commands both ask
            return ctx.meta["imageworks.plugin_commands"]
        from imageworks_models.pluginhost.manager import command_entry_points

        state = ctx.find_object(CliState)

        def settings():  # read only when a plugin declares a command (the allow/deny lists filter them)
            try:
                return state.settings() if state else None
            except Exception:  # a bad config must not break --help; the command itself will report it
                return None

        names = {n: v for n, v in command_entry_points(settings).items() if self._visible(n) and n not in COMMANDS}
        ctx.meta["imageworks.plugin_commands"] = names
        return names

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = {n for n in COMMANDS if self._visible(n)}
        names |= set(self._plugin_command_names(ctx))
        names |= {n for n in self.commands if self._visible(n)}
        return sorted(names)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if not self._visible(name):
            return None
        if name in COMMANDS:
            import importlib

            module, attr = COMMANDS[name].target.split(":")
            return getattr(importlib.import_module(module), attr)
        if name not in self.commands and not self._plugins_loaded:
            self._plugins_loaded = True
            state = ctx.ensure_object(CliState)
            # click resolves the command before the group callback records the group's options;
            # plugins read settings when they load, so record them now.
            if ctx.params.get("registry_dir"):
                state.flags["registry_dir"] = ctx.params["registry_dir"]
                state._settings = None
            state.plugins().add_commands(self)
        return self.commands.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        plugin_names = self._plugin_command_names(ctx)
        for name in self.list_commands(ctx):
            if name in COMMANDS:
                rows.append((name, COMMANDS[name].summary))
            elif name in plugin_names:
                rows.append((name, f"(from {plugin_names[name][1] or 'a plugin'})"))
            else:
                rows.append((name, self.commands[name].get_short_help_str()))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["imageworks.argv"] = list(args)  # what the user typed, for the audit trail
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        import shlex

        from imageworks_models.registry import audit

        argv = ctx.meta.get("imageworks.argv") or []
        with audit.command(" ".join([ctx.info_name or "imageworks-models", *map(shlex.quote, argv)])):
            try:
                return super().invoke(ctx)
            except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
                raise
            except BrokenPipeError:  # the reader went away (`list | head -1`): what it wanted, it has
                _quiet_stdout()
                ctx.exit(EXIT_OK)
            except Exception as exc:  # one clear line, a traceback only when asked for
                _audit_failure(ctx, argv, exc)
                report_error(exc)
                ctx.exit(getattr(exc, "exit_code", 1) if _is_ours(exc) else 1)


    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """click's ``main`` with this tool's exit codes: 64 for a usage error (click's own is 2, which
        ``verify`` uses for divergence), 130 when interrupted, 0 when the reader of our output closed the pipe."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        code = EXIT_OK
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) and not isinstance(rv, bool) else EXIT_OK
            sys.stdout.flush()
        except click.UsageError as exc:
            exc.show()
            code = EXIT_USAGE
        except click.ClickException as exc:
            exc.show()
            code = exc.exit_code
        except click.exceptions.Abort as exc:
            if isinstance(exc.__cause__, KeyboardInterrupt) or isinstance(exc.__context__, KeyboardInterrupt):
                click.echo("interrupted", err=True)
                code = EXIT_INTERRUPTED
            else:  # a prompt found no input (stdin closed)
                click.echo("error: aborted: no answer to the question (stdin is closed)", err=True)
                code = EXIT_ERROR
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            code = EXIT_INTERRUPTED
        except BrokenPipeError:
            _quiet_stdout()
        sys.exit(code)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush cannot fail on the closed pipe (the
    recipe of Python's signal module documentation, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (a test runner's buffer)
        pass


def _audit_failure(ctx: click.Context, argv: list[str], exc: BaseException) -> None:
    """With IMAGEWORKS_DEBUG=1, a failed write is kept in the audit trail with its traceback (otherwise a refused
    command leaves every file as it was, the log too). The command is the one click resolved, so a global option
    before it (``--registry-dir X verify``) changes nothing."""
    from imageworks_models.present.commands import writes

    if not debug_enabled() or not writes(ctx.invoked_subcommand or "") or "--dry-run" in argv:
        return
    from imageworks_models.registry import audit

    try:
        log_dir = ctx.ensure_object(CliState).settings().log_dir
    except Exception:  # noqa: BLE001 - no settings (a bad config file): nowhere to write the record
        return
    audit.record(log_dir, "failed", error=exc)


def _is_ours(exc: BaseException) -> bool:
    from imageworks_models.errors import ImageworksError

    return isinstance(exc, ImageworksError)


def debug_enabled() -> bool:
    """The ``debug`` setting (IMAGEWORKS_DEBUG), read the one way settings are read."""
    from imageworks_models.settings import debug_enabled as setting

    return setting()


def report_error(exc: BaseException) -> None:
    """Print ``error: ...`` (and ``hint: ...``) to stderr; the traceback too with IMAGEWORKS_DEBUG=1."""
    if debug_enabled():
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    from imageworks_models.redact import redact

    if _is_ours(exc):
        lines = exc.lines()
        click.echo(redact(f"error: {lines[0]}"), err=True)
        for line in lines[1:]:
            click.echo(redact(line), err=True)
        if exc.hint:
            click.echo(redact(f"hint: {exc.hint}"), err=True)
    elif isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        # a file system refusal (a name too long, a permission, a full disk) is the user's to fix: say which
        # file and why in one line, not as an internal error (B19)
        import errno

        click.echo(redact(f"error: {exc.filename}: {exc.strerror}"), err=True)
        if exc.errno == errno.ENAMETOOLONG:
            click.echo("hint: use a shorter name: most file systems allow 255 bytes per name and 4096 per path",
                       err=True)
        else:
            click.echo("hint: check the path and its permissions", err=True)
    else:
        click.echo(redact(f"error: internal error: {type(exc).__name__}: {exc}"), err=True)
        if not debug_enabled():
            click.echo("hint: run again with IMAGEWORKS_DEBUG=1 for the traceback, and report it", err=True)


def _group(prog: str) -> LazyGroup:
    view = visible_in(prog)

    @click.group(cls=LazyGroup, view=view, context_settings={"help_option_names": ["-h", "--help"]},
                 invoke_without_command=False)
    @click.version_option(__version__, "--version", prog_name=prog, message="%(prog)s %(version)s")
    @click.option("--registry-dir", type=click.Path(file_okay=False), default=None,
                  help="Registry folder (default: $IMAGEWORKS_REGISTRY_DIR, ./configs, or the per-user one).")
    @click.pass_context
    def cli(ctx: click.Context, registry_dir: str | None) -> None:
        state = ctx.ensure_object(CliState)
        state.prog = prog
        if registry_dir:
            state.flags["registry_dir"] = registry_dir

    cli.name = prog
    cli.help = _HELP[prog]
    return cli


_HELP = {
    "imageworks-models": """Deterministic registry, downloader and serving orchestrator for local model weights.

\b
Examples:
  imageworks-models list --include-non-installed
  imageworks-models select caption --require vision --json
  imageworks-models show qwen2.5-vl-7b-vllm-awq --provenance
""",
    "imageworks-loader": """Registry and orchestration commands of the Model Loader runbook.

\b
Examples:
  imageworks-loader list --role vision
  imageworks-loader select qwen2.5-vl-7b-vllm-awq
  imageworks-loader verify qwen2.5-vl-7b-vllm-awq
  imageworks-loader lock qwen2.5-vl-7b-vllm-awq --set-expected
""",
    "imageworks-download": """Download, scan and registry-maintenance commands of the Model Downloader runbook.

\b
Examples:
  imageworks-download list --json | jq -r '.[] | select(.quantization == "q4_k_m") | .name'
  imageworks-download stats
  imageworks-download verify --fix-missing
""",
}


def _run(prog: str) -> None:
    cli = _group(prog)
    try:
        cli.main(prog_name=prog, obj=CliState(prog))
    finally:
        # The process ends here. Frozen, what the command built is skipped by the collections the interpreter runs
        # while shutting down (atexit handlers, flushes and the freeing of every object still happen): those
        # walked every object left, 50-60 ms of a `download` after huggingface_hub and pydantic were imported.
        import gc

        gc.freeze()


def main_models() -> None:
    _run("imageworks-models")


def main_loader() -> None:
    _run("imageworks-loader")


def main_download() -> None:
    _run("imageworks-download")


def make_cli(prog: str = "imageworks-models") -> click.Group:
    """The click group for ``prog`` (tests drive it with ``click.testing.CliRunner``)."""
    return _group(prog)
