"""What a person reads, shared by the CLI and the GUI: the rows and summaries of the read commands
(``views``), the closed sets options take and "did you mean" (``choices``), which actions an entry can take
now (``availability``) and the command table (``commands``: every command declared once).

May import every layer below it (``export``, ``gateway``, ``maintain``, ``serving``...); never the CLI or the
GUI, which sit above it.
"""
