"""The ``hf`` source object the core calls (see the README, "Writing a plugin": sources)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

from imageworks_models.api import SILENT, Progress
from imageworks_models.api import Discovered, Fetched, FetchRequest

from .remote import SHAPES

_SPEC = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(@.+)?$")


class HFSource:
    name = "hf"
    shapes = SHAPES  # what `download` lists when no source accepts a reference

    def accepts(self, spec: str) -> bool:
        """Whether ``spec`` names a Hub repo: ``owner/repo[@revision]`` (not a local path) or an http(s) URL
        of a repo, a revision or a file (its host is checked against the endpoint when fetching)."""
        from .remote import is_url

        return is_url(spec) or (bool(_SPEC.match(spec.strip())) and not os.path.exists(spec))

    def scan(self, root: Path, *, settings) -> Iterator[Discovered]:
        """Models under ``root``: HF model folders, HF cache repos and GGUF files."""
        from .scan import scan

        return scan(Path(root))

    def discover(self, *, settings) -> Iterator[Discovered]:
        """Models in huggingface_hub's own cache (``HF_HUB_CACHE``, ``HF_HOME/hub``)."""
        from .hfpaths import hub_cache
        from .scan import scan

        cache = Path(hub_cache())
        return scan(cache) if cache.is_dir() else iter(())

    def fetch(self, request: FetchRequest, *, settings, progress: Progress = SILENT, hash_file=None) -> Fetched:
        """Download ``request.spec`` from the Hub (see :mod:`imageworks_models_hf.fetch`)."""
        from .fetch import fetch

        return fetch(request, settings=settings, progress=progress, hash_file=hash_file)

    def latest_commit(self, repo_id: str, revision: str, *, settings) -> str:
        """The commit ``revision`` (a branch or tag) of ``repo_id`` points at now on the Hub (one
        ``model_info`` call; no file is listed or fetched).

        Raises:
            RemoteNotFoundError, RemoteAccessError, RemoteUnavailableError: as the Hub answered.
        """
        from .hubapi import get_token
        from .remote import latest_commit

        return latest_commit(repo_id, revision, endpoint=settings.hf_endpoint, token=get_token(),
                             timeouts=(settings.download_connect_timeout, settings.download_read_timeout))[0]
