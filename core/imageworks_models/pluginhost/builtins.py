"""Built-in implementations, registered through the same hooks as third-party plugins."""

from __future__ import annotations

from imageworks_models.plugin.hookspecs import hookimpl


@hookimpl
def register_hashers(register):
    from imageworks_models.pluginhost.hashers import builtin_hashers

    for hasher in builtin_hashers():
        register(hasher)


@hookimpl
def inspect_artifact(path):
    # imported here: this module is imported at every CLI start and must stay cheap
    from imageworks_models.formats.inspect import inspect_path

    return inspect_path(path)
