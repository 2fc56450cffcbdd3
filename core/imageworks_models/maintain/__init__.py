"""Registry maintenance shared by the CLI and the GUI: reset, restore and remove (``reset``), clean-up of
duplicates, deprecated, logical-only and imported entries (``cleanup``), ``normalize-formats`` (``normalize``)
and the GUI's entry editing, validated the way activation validates (``editing``).

May import ``serving`` (the launch checks), ``acquire``, ``integrity``, ``registry`` and everything below;
never export, the gateway, the CLI or the GUI.
"""
