"""Serving models: the single-active-model orchestrator (``activation``), the backends at work for the CLI,
the GUI and library callers (``control``: ``activate``, ``deactivate``, ``health``, ``status``, the one way
to read what is live), endpoint URLs (``endpoints``), what an entry may put on a server's command line
(``serverargs``), asking a server over HTTP whether it is ready (``probing``) and choosing a model for a
client (``selection``).

May import ``fit``, ``live``, ``acquire``, ``integrity``, ``registry``, ``pluginhost``, ``plugin``, ``fs`` and
the base modules; never maintenance, the gateway, export, the CLI or the GUI.
"""
