"""THE plugin contract. Every hook is documented here and in the README ("Hooks").

Rules for implementers (they follow pluggy's): hooks are called with keyword arguments, so name your
parameters exactly as below and take only those you need; never give a hook parameter a default (pluggy
never passes it); a hook that raises is reported as a broken plugin and does not stop the others. The
core only ever adds hook arguments, never removes them.
"""

from __future__ import annotations

import pluggy

PROJECT = "imageworks_models"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_sources(register):
    """Called once when plugins load, to collect model sources.

    Call ``register(Source(name=..., description=..., load=..., provides=(...)))`` for each source
    (something that discovers entries on disk or in a store, or fetches them). Returns nothing.
    """


@hookspec
def register_backends(register):
    """Called once when plugins load, to collect serving backends.

    Call ``register(Backend(name=..., description=..., endpoint=..., load=..., activates=...))`` for
    each backend an entry's ``backend`` field may name. Returns nothing.
    """


@hookspec
def register_hashers(register):
    """Called once when plugins load, to collect file hashers.

    Call ``register(Hasher(name=..., description=..., new=...))``; ``new()`` returns a hashlib-style
    object whose ``update`` should release the GIL for large buffers (files are hashed in parallel
    threads). ``sha256`` is built in, ``blake3`` too when its package is installed. Returns nothing.
    """


@hookspec
def register_commands(cli):
    """Called when the CLI needs plugin commands (only when one is run, or ``plugins`` lists them).

    Add click commands with ``cli.add_command(command)``. Declare each command's name under the
    entry-point group ``imageworks_models.commands`` too, so ``--help`` lists it without importing
    your plugin. Returns nothing.
    """


@hookspec(firstresult=True)
def inspect_artifact(path):
    """Called to identify a model file or folder (``path``, a ``pathlib.Path``) from its headers.

    Return an ``ArtifactInfo`` if this plugin recognises the artifact, else ``None``; the first
    non-``None`` result wins. Read headers only, never whole weight files.
    """
