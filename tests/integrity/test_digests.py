"""S1: digests from a store's manifest are checked before any path is built from them, and every blob path
built from one stays inside ``blobs/`` after ``realpath``."""

from __future__ import annotations

import os

import pytest

from imageworks_models.errors import UnsafePathError
from imageworks_models.fs.safepath import blob_path, check_sha256_digest

HEX = "0123456789abcdef" * 4

HOSTILE = [
    "",
    None,
    42,
    ["sha256:" + HEX],
    "sha256:" + HEX[:63],  # 63 hex digits
    "sha256:" + HEX + "0",  # 65
    "sha256:" + HEX[:-1] + "g",  # not hex
    "sha256:../../etc/passwd",
    "sha256-../../../../etc/shadow",
    "sha256:" + HEX[:32] + "/" + HEX[:31],
    "sha256:" + HEX[:63] + "\x00",
    "sha256:" + HEX + "\x00",
    "sha256:" + HEX + "\n",
    "sha256:" + HEX + " ",
    " sha256:" + HEX,
    "sha512:" + HEX + HEX,
    "md5:" + HEX[:32],
    "blake3:" + HEX,
    HEX,  # no algorithm
    "sha256" + HEX,  # no separator
    "sha256/" + HEX,
    "sha256:" + HEX.replace("a", "\u0430"),  # Cyrillic look-alikes
    "sha256:" + "\uff10" * 64,  # full-width digits
    "/blobs/sha256-" + HEX,
    "sha256:" + HEX + "/../../x",
]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_digests_are_refused_before_any_filesystem_call(value, tmp_path, monkeypatch):
    calls = []
    for name in ("stat", "lstat", "open"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda *a, _real=real, _n=name, **k: (calls.append(_n), _real(*a, **k))[1])

    with pytest.raises(UnsafePathError) as err:
        blob_path(tmp_path / "blobs", value)

    assert "not sha256:<64 hex digits>" in err.value.message
    assert calls == []  # refused on the text alone


@pytest.mark.parametrize("value, expected", [
    ("sha256:" + HEX, "sha256:" + HEX),
    ("sha256-" + HEX, "sha256:" + HEX),
    ("sha256:" + HEX.upper(), "sha256:" + HEX),  # upper case normalised
    ("SHA256-" + HEX.upper(), "sha256:" + HEX),
])
def test_both_ollama_spellings_are_accepted_and_normalised(value, expected):
    assert check_sha256_digest(value) == expected


def test_blob_path_is_the_blob_file_inside_blobs(tmp_path):
    blobs = tmp_path / "blobs"
    blobs.mkdir()

    path = blob_path(blobs, "sha256:" + HEX.upper())

    assert path == blobs / f"sha256-{HEX}"
    assert os.path.dirname(os.path.realpath(path)) == os.path.realpath(blobs)


def test_a_blob_that_is_a_link_out_of_blobs_is_refused(tmp_path):
    """S6: an Ollama blob that is a symlink to /etc/shadow (or anywhere outside blobs/) is not used."""
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    os.symlink("/etc/shadow", blobs / f"sha256-{HEX}")

    with pytest.raises(UnsafePathError, match="resolves outside"):
        blob_path(blobs, "sha256:" + HEX)


def test_a_blobs_folder_that_is_a_link_is_followed_only_for_the_folder_itself(tmp_path):
    """A store whose blobs/ is itself a link (a store moved to another disk) still works: the check is
    that each blob resolves directly inside wherever blobs/ leads."""
    real = tmp_path / "disk2" / "blobs"
    real.mkdir(parents=True)
    (tmp_path / "store").mkdir()
    os.symlink(real, tmp_path / "store" / "blobs")
    (real / f"sha256-{HEX}").write_bytes(b"x")

    path = blob_path(tmp_path / "store" / "blobs", "sha256-" + HEX)

    assert os.path.realpath(path) == str(real / f"sha256-{HEX}")
