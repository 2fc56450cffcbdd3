"""Header-only readers for model artifacts: GGUF, safetensors, Hugging Face config and chat templates.

Why a package of its own, written with the standard library only: ``inspect_artifact`` runs on every
scan of a models folder, on files that may be tens of gigabytes, half-downloaded, git-LFS pointers or
deliberately hostile. The readers here look only at headers, bound every length field against the file
size and a read budget before trusting it, and turn every problem into one
:class:`~imageworks_models.errors.ArtifactFormatError` line naming the file. The reference libraries
(``gguf``, ``safetensors``) are test-only dependencies: ``gguf.GGUFReader`` parses the whole tokenizer
(seconds for a large vocabulary) and neither bounds lengths the way a scanner must.

Import the submodules directly (``from imageworks_models.formats.inspect import inspect_path``); this
``__init__`` imports nothing so that loading one reader stays cheap. May import ``plugin`` (the records it
returns), ``fs`` and the base modules only.
"""
