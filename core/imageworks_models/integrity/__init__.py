"""Which bytes a model is: hashing files fast (``hashing``), manifests and aggregate digests (``manifest``),
the stat cache that lets ``verify --quick`` skip unchanged files (``statcache``), and verify, lock and unlock
(``verify``).

May import ``registry``, ``pluginhost`` (hashers), ``formats``, ``plugin``, ``fs`` and the base modules;
never acquisition, serving, the CLI or the GUI.
"""
