"""Files on disk, safely: locked atomic writes (``storage``), names from outside turned into safe local paths
(``safepath``), and dry runs that write nothing (``dryrun``).

Owns every way this project changes a file. May import the base modules only (``errors``, ``settings``,
``units``, ``reports``, ``redact``); everything above writes through it.
"""
