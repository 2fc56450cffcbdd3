"""Getting models into the registry: ``download`` (through the source that accepts a reference),
``discovery`` (scan, naming, recording what was found), ``storeimport`` (a store another program owns, e.g.
Ollama's) and ``lockfile`` (``models.lock``: export, ``sync``, ``check-updates``).

May import ``integrity``, ``registry``, ``pluginhost``, ``formats``, ``plugin``, ``fs`` and the base modules;
never serving, maintenance, the CLI or the GUI.
"""
