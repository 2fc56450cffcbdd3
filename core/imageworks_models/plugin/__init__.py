"""The plugin contract: the hook specifications (``hookspecs``), the records plugins register and return
(``records``) and the Protocols their implementation objects satisfy (``protocols``). ``imageworks_models.api``
re-exports all of it for plugins.

Plain declarations: may import the base modules only, and pluggy. Loading and calling plugins is
``pluginhost``'s.
"""
