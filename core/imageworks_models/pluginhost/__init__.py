"""Finding, loading and calling plugins (``manager``: entry points, allow/deny lists, a broken plugin as a
warning with an uninstall hint, duplicate names refused) and the built-in plugin (``builtins``: sha256 and
blake3 hashers, the header readers as ``inspect_artifact``), registered through the same hooks as third-party
plugins.

May import ``plugin``, ``formats``, ``fs`` and the base modules; never the registry or anything above it.
"""
