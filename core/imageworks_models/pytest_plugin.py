"""A pytest plugin (entry point ``pytest11``) for testing imageworks-models plugins.

Installed with imageworks-models, it adds one fixture and changes nothing unless a test asks for it:

    pytestmark = pytest.mark.usefixtures("imageworks_isolated")

``imageworks_isolated`` runs the test with a private HOME, XDG folders and working folder, none of our
settings from the environment, and freshly loaded plugins
(:func:`imageworks_models.testing.isolate_environment`).
"""

from __future__ import annotations

import pytest


@pytest.fixture
def imageworks_isolated(tmp_path, monkeypatch):
    from imageworks_models.testing import isolate_environment

    yield from isolate_environment(tmp_path, monkeypatch)
