"""``hfpaths``: huggingface_hub's home, model cache and token file, read from the environment when asked, equal
to what huggingface_hub's own constants say in the same environment (each side in a fresh process, since
huggingface_hub reads them once, at import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from imageworks_models_hf import hfpaths

NAMES = ("HF_HOME", "XDG_CACHE_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN_PATH",
         "HUGGINGFACE_CO_STAGING")

LAYOUTS = {
    "nothing set": {},
    "HF_HOME": {"HF_HOME": "{tmp}/hf"},
    "HF_HOME with ~ and a variable": {"HF_HOME": "~/x/$IW_PART", "IW_PART": "part"},
    "XDG_CACHE_HOME": {"XDG_CACHE_HOME": "{tmp}/xdg"},
    "XDG_CACHE_HOME set empty": {"XDG_CACHE_HOME": ""},
    "HF_HOME set empty": {"HF_HOME": ""},
    "HF_HUB_CACHE": {"HF_HUB_CACHE": "{tmp}/cache"},
    "HUGGINGFACE_HUB_CACHE (the older name)": {"HUGGINGFACE_HUB_CACHE": "{tmp}/legacy"},
    "both cache names": {"HF_HUB_CACHE": "{tmp}/new", "HUGGINGFACE_HUB_CACHE": "{tmp}/legacy"},
    "HF_TOKEN_PATH": {"HF_TOKEN_PATH": "~/tokens/hf"},
    "HF_HOME and XDG_CACHE_HOME": {"HF_HOME": "{tmp}/hf", "XDG_CACHE_HOME": "{tmp}/xdg"},
    "the staging Hub": {"HUGGINGFACE_CO_STAGING": "yes", "HF_HOME": "{tmp}/hf"},
}

OURS = ("from imageworks_models_hf import hfpaths as p; import json; "
        "print(json.dumps([p.hf_home(), p.hub_cache(), p.token_path()]))")
THEIRS = ("from huggingface_hub import constants as c; import json; "
          "print(json.dumps([c.HF_HOME, c.HF_HUB_CACHE, c.HF_TOKEN_PATH]))")


def _paths(code: str, env: dict[str, str], cwd) -> list[str]:
    return json.loads(subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True,
                                     text=True, check=True, timeout=60).stdout)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_the_paths_are_the_ones_huggingface_hub_uses(tmp_path, monkeypatch, layout):
    env = {k: v for k, v in os.environ.items() if k not in NAMES}
    env["HOME"] = str(tmp_path / "home")
    env.update({k: v.replace("{tmp}", str(tmp_path)) for k, v in LAYOUTS[layout].items()})

    ours = _paths(OURS, env, tmp_path)

    assert ours == _paths(THEIRS, env, tmp_path)
    assert all(p.startswith(str(tmp_path)) or not os.path.isabs(p) for p in ours)  # never the real home
    for name in NAMES + ("HOME", "IW_PART"):  # and read now, in this process, after it started
        monkeypatch.delenv(name, raising=False)
        if name in env:
            monkeypatch.setenv(name, env[name])
    assert [hfpaths.hf_home(), hfpaths.hub_cache(), hfpaths.token_path()] == ours
