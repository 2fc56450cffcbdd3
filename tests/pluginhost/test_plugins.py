"""Plugin discovery, isolation of broken plugins, allow/deny lists, and every hook of the contract.

Fake plugins are real installed distributions: a module plus a ``<dist>-<version>.dist-info`` folder
(METADATA and entry_points.txt) in a temporary folder put on ``sys.path``, which is exactly what
``importlib.metadata`` finds for a ``pip install``-ed package. The real hf/ollama/vllm/lmdeploy plugins
are installed in the environment the tests run in.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from imageworks_models.pluginhost.manager import get_plugins, reset_plugins

REAL_PLUGINS = {
    "hf": "imageworks-models-hf",
    "ollama": "imageworks-models-ollama",
    "vllm": "imageworks-models-vllm",
    "lmdeploy": "imageworks-models-lmdeploy",
}

# blake3 is offered only when its optional package is installed (it is, in the dev environment).
BUILTIN_HASHERS = ["sha256"] + (["blake3"] if importlib.util.find_spec("blake3") else [])


class FakeSite:
    """A folder on ``sys.path`` into which fake plugin distributions are "installed"."""

    def __init__(self, root: Path):
        self.root = root
        self.modules: list[str] = []

    def install(self, dist: str, source: str, *, name: str | None = None, version: str = "1.0",
                commands: tuple[str, ...] = ()) -> str:
        """Install distribution ``dist`` whose plugin module holds ``source``; returns the module name.

        The entry point (group ``imageworks_models``) is called ``name`` (default: ``dist``); each of
        ``commands`` is declared under ``imageworks_models.commands`` pointing at the same module.
        """
        module = "fakeplug_" + dist.replace("-", "_").replace(".", "_")
        (self.root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
        eps = f"[imageworks_models]\n{name or dist} = {module}\n"
        if commands:
            eps += "\n[imageworks_models.commands]\n" + "".join(f"{c} = {module}\n" for c in commands)
        (info / "entry_points.txt").write_text(eps, encoding="utf-8")
        self.modules.append(module)
        importlib.invalidate_caches()
        reset_plugins()
        return module


@pytest.fixture
def site(tmp_path, monkeypatch):
    root = tmp_path / "site-packages"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    fake = FakeSite(root)
    yield fake
    for module in fake.modules:
        sys.modules.pop(module, None)
    importlib.invalidate_caches()


@pytest.fixture
def registry_dir(tmp_path):
    """A registry with one installed vLLM entry, built through the store (so its snapshot is fresh)."""
    from imageworks_models.registry.store import RegistryStore

    directory = tmp_path / "registry"
    weights = tmp_path / "weights" / "m1"
    weights.mkdir(parents=True)
    with RegistryStore(directory).edit() as layers:
        layers.curated.put({"name": "m1", "backend": "vllm", "roles": ["caption"], "capabilities": {"vision": True}})
        layers.discovered.put({"name": "m1", "download": {"path": str(weights)}})
    return str(directory)


def plugins_json(cli) -> tuple[dict[str, dict], str]:
    result = cli("plugins", "--json")
    assert result.exit_code == 0, result.stderr
    return {p["name"]: p for p in json.loads(result.stdout)}, result.stderr


def lines_mentioning(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def assert_real_plugins_ok(plugins: dict[str, dict]) -> None:
    assert plugins["builtin"]["status"] == "ok"
    for name, dist in REAL_PLUGINS.items():
        assert plugins[name]["status"] == "ok", plugins[name]
        assert plugins[name]["distribution"] == dist


# --- a plugin that cannot be imported ----------------------------------------------------------------

BROKEN_IMPORT = """
    raise ImportError("acme needs libacme.so, which is not installed")
"""


def test_broken_import_is_reported_once_with_a_fix_and_others_load(cli, site):
    site.install("acme-broken", BROKEN_IMPORT, name="acme")

    plugins, stderr = plugins_json(cli)

    broken = plugins["acme"]
    assert broken["status"] == "broken"
    assert broken["distribution"] == "acme-broken"
    assert broken["version"] == "1.0"
    assert any("ImportError" in e and "libacme.so" in e for e in broken["errors"]), broken["errors"]
    assert broken["provides"] == {}
    assert_real_plugins_ok(plugins)
    warnings = lines_mentioning(stderr, "acme-broken")
    assert len(warnings) == 1, stderr
    assert warnings[0].startswith("warning: ")
    assert "pip uninstall acme-broken" in warnings[0]
    assert "IMAGEWORKS_DISABLE_PLUGINS=acme" in warnings[0]
    assert "Traceback" not in stderr


def test_broken_import_shows_in_plugins_table(cli, site):
    site.install("acme-broken", BROKEN_IMPORT, name="acme")

    result = cli("plugins")

    assert result.exit_code == 0
    row = next(line for line in result.stdout.splitlines() if line.startswith("acme "))
    assert "acme-broken" in row and "broken" in row
    assert any(line.startswith("acme:") and "libacme.so" in line for line in result.stdout.splitlines())
    for name in REAL_PLUGINS:
        real_row = next(line for line in result.stdout.splitlines() if line.startswith(f"{name} "))
        assert " ok " in real_row


def test_broken_import_does_not_stop_other_commands(cli, site, registry_dir):
    site.install("acme-broken", BROKEN_IMPORT, name="acme")

    selected = cli("--registry-dir", registry_dir, "select", "m1", "--json")
    assert selected.exit_code == 0, selected.stderr
    data = json.loads(selected.stdout)
    assert data["name"] == "m1"
    assert data["endpoint"] == "http://127.0.0.1:8000/v1"  # the real vllm plugin still answers
    assert len(lines_mentioning(selected.stderr, "acme-broken")) == 1, selected.stderr

    listed = cli("--registry-dir", registry_dir, "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [r["name"] for r in json.loads(listed.stdout)] == ["m1"]

    config = cli("config", "--json")
    assert config.exit_code == 0, config.stderr
    assert "plugins" in json.loads(config.stdout)


def test_broken_plugin_warning_is_a_single_line_even_for_multiline_errors(cli, site):
    site.install("acme-multiline", 'raise ImportError("first line\\nsecond line\\n  third line")\n', name="acme")

    _, stderr = plugins_json(cli)

    assert stderr.count("\n") == 1 and stderr.startswith("warning: "), stderr
    assert "acme-multiline" in stderr and "third line" in stderr


# --- hooks that raise, are misspelled, or hand over the wrong thing -----------------------------------


def test_hook_register_backends_raising_plugin_is_broken_and_others_are_kept(cli, site):
    site.install("acme-good", """
        from imageworks_models import Backend, hookimpl

        @hookimpl
        def register_backends(register):
            register(Backend(name="acme-good", description="a working backend"))
    """)
    site.install("acme-raiser", """
        from imageworks_models import Hasher, hookimpl

        @hookimpl
        def register_backends(register):
            raise RuntimeError("backend table exploded")

        @hookimpl
        def register_hashers(register):
            raise RuntimeError("hasher table exploded too")
    """)

    plugins, stderr = plugins_json(cli)

    raiser = plugins["acme-raiser"]
    assert raiser["status"] == "broken"
    assert raiser["distribution"] == "acme-raiser"
    assert any("register_backends" in e and "backend table exploded" in e for e in raiser["errors"]), raiser
    assert plugins["acme-good"]["status"] == "ok"
    assert plugins["acme-good"]["provides"] == {"backend": ["acme-good"]}
    assert_real_plugins_ok(plugins)
    assert plugins["vllm"]["provides"] == {"backend": ["vllm"]}
    assert plugins["ollama"]["provides"] == {"source": ["ollama"], "backend": ["ollama"]}
    warnings = lines_mentioning(stderr, "acme-raiser")
    assert len(warnings) == 1, stderr  # once per plugin, not once per hook
    assert "backend table exploded" in warnings[0] and "pip uninstall acme-raiser" in warnings[0]

    host = get_plugins()
    assert {"acme-good", "vllm", "ollama", "lmdeploy"} <= set(host.backends)


def test_hook_register_sources_misspelled_hook_suggests_the_right_name(cli, site):
    site.install("acme-typo", """
        from imageworks_models import Source, hookimpl

        @hookimpl
        def register_sourcs(register):
            register(Source(name="acme-typo", description="never registered"))
    """)

    plugins, stderr = plugins_json(cli)

    typo = plugins["acme-typo"]
    assert typo["status"] == "broken"
    assert any("register_sourcs" in e and "did you mean 'register_sources'" in e for e in typo["errors"]), typo
    assert typo["provides"] == {}
    assert_real_plugins_ok(plugins)
    assert "acme-typo" not in get_plugins().sources
    assert len(lines_mentioning(stderr, "acme-typo")) == 1, stderr


def test_hook_register_backends_wrong_record_type_is_a_clear_error(cli, site):
    site.install("acme-wrongtype", """
        from imageworks_models import Source, hookimpl

        @hookimpl
        def register_backends(register):
            register(Source(name="acme-wrongtype", description="a source handed to register_backends"))
    """)

    plugins, _ = plugins_json(cli)

    wrong = plugins["acme-wrongtype"]
    assert wrong["status"] == "broken"
    assert any("register_backends must register Backend records, not Source" in e for e in wrong["errors"]), wrong
    host = get_plugins()
    assert "acme-wrongtype" not in host.backends and "acme-wrongtype" not in host.sources
    assert_real_plugins_ok(plugins)


def test_hook_register_sources_plain_dict_is_refused(cli, site):
    site.install("acme-dict", """
        from imageworks_models import hookimpl

        @hookimpl
        def register_sources(register):
            register({"name": "acme-dict", "description": "not a Source record"})
    """)

    plugins, _ = plugins_json(cli)

    assert plugins["acme-dict"]["status"] == "broken"
    assert any("must register Source records, not dict" in e for e in plugins["acme-dict"]["errors"])
    assert "acme-dict" not in get_plugins().sources


# --- two plugins claiming one name -------------------------------------------------------------------

def _backend_plugin(name: str) -> str:
    return f"""
        from imageworks_models import Backend, hookimpl

        @hookimpl
        def register_backends(register):
            register(Backend(name={name!r}, description="claims {name}"))
    """


def test_hook_register_backends_duplicate_name_is_refused_naming_both(cli, site):
    site.install("dup-alpha", _backend_plugin("vllm2"))
    site.install("dup-beta", _backend_plugin("vllm2"))

    plugins, stderr = plugins_json(cli)

    assert plugins["dup-alpha"]["provides"] == {"backend": ["vllm2"]}
    assert plugins["dup-beta"]["provides"] == {}
    assert any("vllm2" in e and "refused" in e and "dup-alpha" in e for e in plugins["dup-beta"]["errors"])
    conflict = lines_mentioning(stderr, "vllm2")
    assert len(conflict) == 1, stderr
    assert "dup-alpha" in conflict[0] and "dup-beta" in conflict[0]
    assert "pip uninstall dup-beta" in conflict[0]
    host = get_plugins()
    assert host.backends["vllm2"].description == "claims vllm2"
    assert host.owner[("backend", "vllm2")].distribution == "dup-alpha"


def test_hook_register_backends_cannot_take_over_a_real_plugins_name(cli, site):
    site.install("zz-vllm-clone", _backend_plugin("vllm"))

    plugins, stderr = plugins_json(cli)

    assert plugins["vllm"]["provides"] == {"backend": ["vllm"]}
    assert plugins["zz-vllm-clone"]["provides"] == {}
    conflict = [line for line in stderr.splitlines() if "'vllm'" in line]
    assert len(conflict) == 1, stderr
    assert "imageworks-models-vllm" in conflict[0] and "zz-vllm-clone" in conflict[0]
    host = get_plugins()
    assert host.backends["vllm"].endpoint.__module__ == "imageworks_models_vllm.plugin"


def test_hook_register_backends_names_are_normalised_before_comparing(cli, site):
    site.install("norm-a", _backend_plugin("VLLM_2"))
    site.install("norm-b", _backend_plugin("vllm-2"))

    plugins, stderr = plugins_json(cli)

    assert plugins["norm-a"]["provides"] == {"backend": ["vllm-2"]}
    assert plugins["norm-b"]["provides"] == {}
    host = get_plugins()
    assert "vllm-2" in host.backends and "VLLM_2" not in host.backends
    assert host.backend("Vllm_2").description == "claims VLLM_2"
    conflict = lines_mentioning(stderr, "vllm-2")
    assert len(conflict) == 1 and "norm-a" in conflict[0] and "norm-b" in conflict[0], stderr


def test_hook_register_sources_duplicate_of_a_real_source_is_refused(cli, site):
    site.install("zz-hf-fork", """
        from imageworks_models import Source, hookimpl

        @hookimpl
        def register_sources(register):
            register(Source(name="HF", description="a fork"))
            register(Source(name="hf-mirror", description="a mirror"))
    """)

    plugins, stderr = plugins_json(cli)

    assert plugins["hf"]["provides"] == {"source": ["hf"]}
    assert plugins["zz-hf-fork"]["provides"] == {"source": ["hf-mirror"]}  # only the clashing one refused
    assert get_plugins().sources["hf"].description != "a fork"
    assert any("imageworks-models-hf" in line and "zz-hf-fork" in line for line in stderr.splitlines()), stderr


def test_plugin_entry_point_name_already_taken_is_broken(cli, site):
    site.install("zz-hf-twin", 'raise AssertionError("must not be imported")\n', name="hf")

    result = cli("plugins", "--json")

    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    hf_rows = [p for p in rows if p["name"] == "hf"]
    assert [p["distribution"] for p in hf_rows] == ["imageworks-models-hf", "zz-hf-twin"]
    assert hf_rows[0]["status"] == "ok"
    assert hf_rows[1]["status"] == "broken"
    assert any("imageworks-models-hf" in e for e in hf_rows[1]["errors"])


# --- choosing which plugins load ---------------------------------------------------------------------

def test_imageworks_plugins_empty_loads_no_plugin(cli, site, monkeypatch):
    # This plugin would be "broken" if it were imported; "disabled" proves it never was.
    site.install("acme-broken", BROKEN_IMPORT, name="acme")
    monkeypatch.setenv("IMAGEWORKS_PLUGINS", "")

    plugins, stderr = plugins_json(cli)

    assert plugins["builtin"]["status"] == "ok"
    assert plugins["builtin"]["provides"] == {"hasher": BUILTIN_HASHERS}
    for name in [*REAL_PLUGINS, "acme"]:
        assert plugins[name]["status"] == "disabled", plugins[name]
        assert plugins[name]["provides"] == {}
    assert "acme-broken" not in stderr
    host = get_plugins(_settings())
    assert host.sources == {} and host.backends == {}
    assert set(host.hashers) == set(BUILTIN_HASHERS)


def test_imageworks_plugins_allowlist_loads_only_those(cli, monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_PLUGINS", "hf")

    plugins, _ = plugins_json(cli)

    assert plugins["hf"]["status"] == "ok"
    assert plugins["hf"]["provides"] == {"source": ["hf"]}
    for name in ("ollama", "vllm", "lmdeploy"):
        assert plugins[name]["status"] == "disabled"
    host = get_plugins(_settings())
    assert set(host.sources) == {"hf"} and host.backends == {}


def test_imageworks_disable_plugins_skips_one(cli, monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_DISABLE_PLUGINS", "ollama")

    plugins, _ = plugins_json(cli)

    assert plugins["ollama"]["status"] == "disabled"
    assert plugins["ollama"]["provides"] == {}
    for name in ("hf", "vllm", "lmdeploy"):
        assert plugins[name]["status"] == "ok"
    host = get_plugins(_settings())
    assert "ollama" not in host.backends and "ollama" not in host.sources
    assert {"vllm", "lmdeploy"} <= set(host.backends)


@pytest.mark.parametrize("allow, expected_ok", [
    ("imageworks-models-vllm", {"vllm"}),
    ("imageworks_models_vllm, hf", {"vllm", "hf"}),
    ("IMAGEWORKS-MODELS-LMDEPLOY", {"lmdeploy"}),
])
def test_imageworks_plugins_matches_distribution_names(cli, monkeypatch, allow, expected_ok):
    monkeypatch.setenv("IMAGEWORKS_PLUGINS", allow)

    plugins, _ = plugins_json(cli)

    assert {n for n in REAL_PLUGINS if plugins[n]["status"] == "ok"} == expected_ok
    assert {n for n in REAL_PLUGINS if plugins[n]["status"] == "disabled"} == set(REAL_PLUGINS) - expected_ok


def test_imageworks_disable_plugins_matches_distribution_names(cli, monkeypatch):
    monkeypatch.setenv("IMAGEWORKS_DISABLE_PLUGINS", "imageworks-models-lmdeploy")

    plugins, _ = plugins_json(cli)

    assert plugins["lmdeploy"]["status"] == "disabled"
    assert {n for n in REAL_PLUGINS if plugins[n]["status"] == "ok"} == {"hf", "ollama", "vllm"}


def test_disabling_the_broken_plugin_silences_it(cli, site, monkeypatch, registry_dir):
    site.install("acme-broken", BROKEN_IMPORT, name="acme")
    monkeypatch.setenv("IMAGEWORKS_DISABLE_PLUGINS", "acme")  # the fix the warning suggests

    result = cli("--registry-dir", registry_dir, "select", "m1", "--json")

    assert result.exit_code == 0
    assert result.stderr == ""
    plugins, _ = plugins_json(cli)
    assert plugins["acme"]["status"] == "disabled"


def _settings():
    from imageworks_models.settings import load_settings

    return load_settings()


# --- inspect_artifact (firstresult) ------------------------------------------------------------------

def _inspector(fmt: str | None = None, *, raises: str | None = None, tryfirst: bool = False) -> str:
    body = f"raise ValueError({raises!r})" if raises else (
        f"return ArtifactInfo(format={fmt!r}, details={{'path': str(path)}})" if fmt else "return None")
    marker = "@hookimpl(tryfirst=True)" if tryfirst else "@hookimpl"
    return f"""
        from imageworks_models import ArtifactInfo, hookimpl

        {marker}
        def inspect_artifact(path):
            {body}
    """


def test_hook_inspect_artifact_last_registered_plugin_answers_first(site, tmp_path):
    site.install("insp-a", _inspector("format-from-a"))
    site.install("insp-b", _inspector("format-from-b"))
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(b"\0" * 16)

    host = get_plugins()
    info = host.inspect_artifact(artifact)

    assert info is not None and info.format == "format-from-b"
    assert info.details == {"path": str(artifact)}
    # the same answer pluggy itself gives for a firstresult hook
    assert host.pm.hook.inspect_artifact(path=artifact).format == "format-from-b"


def test_hook_inspect_artifact_tryfirst_is_respected(site, tmp_path):
    site.install("insp-a", _inspector("format-from-a", tryfirst=True))
    site.install("insp-b", _inspector("format-from-b"))

    assert get_plugins().inspect_artifact(tmp_path).format == "format-from-a"


def test_hook_inspect_artifact_none_passes_to_the_next_plugin(site, tmp_path):
    site.install("insp-a", _inspector("format-from-a"))
    site.install("insp-b", _inspector(None))

    assert get_plugins().inspect_artifact(tmp_path).format == "format-from-a"


def test_hook_inspect_artifact_all_none_gives_none(site, tmp_path):
    site.install("insp-a", _inspector(None))

    assert get_plugins().inspect_artifact(tmp_path) is None


def test_hook_inspect_artifact_raising_plugin_is_broken_and_call_goes_on(cli, site, tmp_path):
    site.install("insp-a", _inspector("format-from-a"))
    site.install("insp-b", _inspector(raises="corrupt header in inspector b"))

    host = get_plugins()
    info = host.inspect_artifact(tmp_path)

    assert info is not None and info.format == "format-from-a"
    broken = next(p for p in host.plugins if p.name == "insp-b")
    assert broken.status == "broken"
    assert any("inspect_artifact" in e and "corrupt header in inspector b" in e for e in broken.errors)
    assert any("insp-b" in w and "pip uninstall insp-b" in w for w in host.warnings)
    # a broken plugin is not asked again
    assert host.inspect_artifact(tmp_path).format == "format-from-a"
    assert len(broken.errors) == 1


# --- register_commands -------------------------------------------------------------------------------

HELLO_PLUGIN = """
    import click

    from imageworks_models import hookimpl

    @hookimpl
    def register_commands(cli):
        @cli.command("hello")
        @click.option("--name", default="world")
        def hello(name):
            '''Say hello from a plugin.'''
            click.echo(f"hello, {name}, from a plugin")
"""


def test_hook_register_commands_command_is_listed_and_runs(cli, site):
    site.install("acme-hello", HELLO_PLUGIN, name="hello-plugin", commands=("hello",))

    helped = cli("--help")
    assert helped.exit_code == 0
    row = next(line for line in helped.stdout.splitlines() if line.strip().startswith("hello "))
    assert "acme-hello" in row

    ran = cli("hello", "--name", "tester")
    assert ran.exit_code == 0, ran.stderr
    assert ran.stdout == "hello, tester, from a plugin\n"

    plugins, _ = plugins_json(cli)
    assert plugins["hello-plugin"]["hooks"] == ["register_commands"]
    assert plugins["hello-plugin"]["status"] == "ok"


def test_hook_register_commands_not_listed_in_other_views(cli, site):
    site.install("acme-hello", HELLO_PLUGIN, name="hello-plugin", commands=("hello",))

    helped = cli("--help", prog="imageworks-loader")

    assert helped.exit_code == 0
    assert not any(line.strip().startswith("hello ") for line in helped.stdout.splitlines())


def test_hook_register_commands_help_does_not_import_the_plugin(site, python):
    module = site.install("acme-hello", HELLO_PLUGIN, name="hello-plugin", commands=("hello",))
    code = textwrap.dedent("""
        import json, sys
        from imageworks_models.cli import main_models
        sys.argv = ["imageworks-models", "--help"]
        try:
            main_models()
        except SystemExit:
            pass
        finally:
            sys.stdout.flush()
            print("MODULES=" + json.dumps(sorted(sys.modules)))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site.root), os.environ.get("PYTHONPATH", "")])}

    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, timeout=60)

    assert proc.returncode == 0, proc.stderr
    help_text, _, modules_line = proc.stdout.rpartition("MODULES=")
    assert any(line.strip().startswith("hello ") for line in help_text.splitlines()), help_text
    modules = set(json.loads(modules_line))
    assert module not in modules
    assert "pluggy" not in modules
    assert not any(m.startswith("imageworks_models_") for m in modules)


@pytest.mark.parametrize("variable, value", [
    ("IMAGEWORKS_DISABLE_PLUGINS", "acme-hello"),  # by distribution
    ("IMAGEWORKS_DISABLE_PLUGINS", "hello-plugin"),  # by plugin (entry-point) name, as the warning suggests
    ("IMAGEWORKS_PLUGINS", "hf"),
])
def test_hook_register_commands_of_a_disabled_plugin_are_not_listed(cli, site, monkeypatch, variable, value):
    site.install("acme-hello", HELLO_PLUGIN, name="hello-plugin", commands=("hello",))
    monkeypatch.setenv(variable, value)

    helped = cli("--help")

    assert helped.exit_code == 0
    assert not any(line.strip().startswith("hello ") for line in helped.stdout.splitlines()), helped.stdout
    assert cli("hello").exit_code != 0


@pytest.mark.parametrize("value", ["hello-plugin", "acme-hello"])
def test_hook_register_commands_of_an_allowed_plugin_are_listed(cli, site, monkeypatch, value):
    site.install("acme-hello", HELLO_PLUGIN, name="hello-plugin", commands=("hello",))
    monkeypatch.setenv("IMAGEWORKS_PLUGINS", value)

    helped = cli("--help")

    assert any(line.strip().startswith("hello ") for line in helped.stdout.splitlines()), helped.stdout
    assert cli("hello").stdout == "hello, world, from a plugin\n"


# --- hashers -----------------------------------------------------------------------------------------

def test_hook_register_hashers_builtin_sha256():
    host = get_plugins()

    hasher = host.hashers["sha256"]
    h = hasher.new()
    h.update(b"ab")
    h.update(b"c")

    assert h.hexdigest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert h.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    assert host.owner[("hasher", "sha256")].name == "builtin"


def test_hook_register_hashers_plugin_adds_one_but_cannot_replace_sha256(cli, site):
    site.install("acme-hash", """
        import hashlib

        from imageworks_models import Hasher, hookimpl

        @hookimpl
        def register_hashers(register):
            register(Hasher(name="blake2b", description="BLAKE2b", new=hashlib.blake2b))
            register(Hasher(name="SHA256", description="an impostor", new=hashlib.md5))
    """)

    plugins, stderr = plugins_json(cli)

    assert plugins["acme-hash"]["provides"] == {"hasher": ["blake2b"]}
    assert plugins["builtin"]["provides"] == {"hasher": BUILTIN_HASHERS}
    host = get_plugins()
    assert host.hashers["sha256"].new is hashlib.sha256
    h = host.hashers["blake2b"].new()
    h.update(b"abc")
    assert h.hexdigest() == hashlib.blake2b(b"abc").hexdigest()
    assert any("sha256" in line and "acme-hash" in line and "core" in line for line in stderr.splitlines()), stderr


def test_hook_register_hashers_plugin_hasher_is_used_by_lock_and_verify(cli, site, tmp_path):
    site.install("acme-b2", """
        import hashlib

        from imageworks_models import Hasher, hookimpl

        @hookimpl
        def register_hashers(register):
            register(Hasher(name="blake2b", description="BLAKE2b-512", new=hashlib.blake2b))
    """)
    from imageworks_models.registry.store import RegistryStore
    from imageworks_models.testing import make_registry

    model = tmp_path / "model"
    model.mkdir()
    (model / "w.bin").write_bytes(b"weights")
    reg = make_registry(tmp_path / "reg", {"name": "m-vllm", "backend": "vllm"})
    with RegistryStore(reg).edit() as layers:
        layers.discovered.put({"name": "m-vllm", "download": {"path": str(model)}})

    locked = cli("--registry-dir", reg, "lock", "m-vllm", "--set-expected", "--algorithm", "blake2b")
    assert locked.exit_code == 0, locked.stderr
    entry = RegistryStore(reg).load().get("m-vllm")
    assert entry["artifacts"]["files"][0]["digest"] == "blake2b:" + hashlib.blake2b(b"weights").hexdigest()
    assert entry["version_lock"]["expected_aggregate"].startswith("blake2b:")
    assert cli("--registry-dir", reg, "verify", "m-vllm").exit_code == 0
    (model / "w.bin").write_bytes(b"weightz")
    assert cli("--registry-dir", reg, "verify", "m-vllm").exit_code == 2


# --- third-party backends and the orchestrator ---------------------------------------------------------

STANDIN = Path(__file__).resolve().parents[2] / "plugins" / "vllm" / "tests" / "standin_server.py"


def _serving_registry(tmp_path, monkeypatch, backend: str) -> str:
    from imageworks_models import testing

    weights = tmp_path / "weights"
    weights.mkdir()
    folder = testing.make_registry(tmp_path / "registry", {"name": "m1", "backend": backend,
                                                           "backend_config": {"model_path": str(weights)}})
    monkeypatch.setenv("IMAGEWORKS_REGISTRY_DIR", folder)
    return folder


def test_hook_register_backends_without_launch_or_activate_is_not_activatable(site, cli, tmp_path, monkeypatch):
    site.install("tgi-imageworks", """
        from imageworks_models import Backend, hookimpl

        class Tgi:
            def health(self, *, settings):
                return {"backend": "tgi", "url": None, "ok": False, "version": None, "loaded": [], "error": "x",
                        "hint": None}

        @hookimpl
        def register_backends(register):
            register(Backend(name="tgi", description="TGI", load=Tgi))
    """)
    _serving_registry(tmp_path, monkeypatch, "tgi")

    result = cli("activate-model", "m1", prog="imageworks-loader")

    assert result.exit_code == 1
    assert "error: 'm1' uses the tgi backend, which cannot load models from here yet" in result.stderr
    assert not (tmp_path / "registry" / "_staging" / "active_vllm.json").exists()


def test_hook_register_backends_a_third_party_process_backend_is_orchestrated(site, cli, tmp_path, monkeypatch):
    # A plugin gives launch() and probe(); the core starts, records, checks and stops its server.
    site.install("standin-imageworks", f"""
        import json, sys, urllib.request
        from imageworks_models import Backend, Launch, Probe, hookimpl

        class StandIn:
            def launch(self, entry, *, settings):
                port = settings.vllm_port
                argv = (sys.executable, {str(STANDIN)!r}, "serve", entry["backend_config"]["model_path"],
                        "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "third/party")
                return Launch(argv=argv, host="127.0.0.1", port=port, served_model_id="third/party",
                              endpoint=f"http://127.0.0.1:{{port}}/v1")

            def probe(self, endpoint, served_model_id, *, settings):
                try:
                    with urllib.request.urlopen(endpoint + "/models", timeout=2) as r:
                        ids = [m["id"] for m in json.load(r)["data"]]
                except OSError as exc:
                    return Probe(False, str(exc))
                return Probe(served_model_id in ids, "")

        @hookimpl
        def register_backends(register):
            register(Backend(name="standin", description="test", load=StandIn, activates=True))
    """)
    _serving_registry(tmp_path, monkeypatch, "standin")
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setenv("CHAT_PROXY_VLLM_PORT", str(sock.getsockname()[1]))

    started = cli("activate-model", "m1", "--json", prog="imageworks-loader")
    current = cli("current-model", "--json", prog="imageworks-loader")
    stopped = cli("activate-model", "--stop", "--json", prog="imageworks-loader")

    assert started.exit_code == 0, started.stderr
    info = json.loads(started.stdout)
    assert info["backend"] == "standin" and info["status"] == "ready" and info["served_model_id"] == "third/party"
    assert json.loads(current.stdout)["active"] is True
    assert json.loads(stopped.stdout)["signal"] == "TERM"
    assert not os.path.exists(f"/proc/{info['pid']}")  # stopped and reaped


def test_plugins_load_without_importlib_metadata_and_find_what_it_finds(site):
    # importlib.metadata cost a scan more start-up time than the rest of its imports together (issue 20)
    site.install("acme-meta", "from imageworks_models.plugin.hookspecs import hookimpl\n", version="2.5")
    code = ("import sys\nfrom imageworks_models.pluginhost.manager import get_plugins\nhost = get_plugins()\n"
            "print(sorted(m for m in sys.modules if m.startswith('importlib.metadata')))\n"
            "print(sorted((p.name, p.distribution, p.version) for p in host.plugins if p.distribution))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site.root), *sys.path])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    imported, loaded = out.stdout.splitlines()
    assert imported == "[]"
    from importlib.metadata import entry_points

    expected = sorted((ep.name, ep.dist.name, ep.dist.version) for ep in entry_points(group="imageworks_models"))
    assert ("acme-meta", "acme-meta", "2.5") in expected
    assert loaded == str(expected)
