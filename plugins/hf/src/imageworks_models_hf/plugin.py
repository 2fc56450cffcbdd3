"""Hook implementations of the Hugging Face plugin."""

from imageworks_models import Source, hookimpl


@hookimpl
def register_sources(register):
    register(Source(name="hf", description="Hugging Face Hub repositories and local HF-layout folders"))
