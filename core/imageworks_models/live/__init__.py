"""What runs now, read without the network: the active-model record ``_staging/active_vllm.json``
(``active``), the gateway's record ``_staging/gateway.json`` (``gateway``), model-server processes known by
identity (``processes``) and the launcher that bounds their logs (``serverlaunch``, standard library only).

May import ``acquire`` and everything below it (in practice ``fs``, ``errors`` and ``settings``); the
orchestrator that writes the records is ``serving``'s.
"""
