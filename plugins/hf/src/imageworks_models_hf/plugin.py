"""Hook implementations of the Hugging Face plugin: the ``hf`` source (scan, discover, fetch, updates)."""

from imageworks_models.api import Source, hookimpl


def _load():
    from .source import HFSource

    return HFSource()


@hookimpl
def register_sources(register):
    register(Source(name="hf", description="Hugging Face Hub repositories and local HF-layout folders",
                    load=_load, provides=("scan", "discover", "fetch", "updates")))
