"""The stand-in Hub (hubserver.py) speaks the Hub's protocol closely enough for the real huggingface_hub client,
and its faults and instrumentation behave as documented."""

from __future__ import annotations

import hashlib
import http.client
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile, RepoFolder

from hubserver import StandInHub, git_blob_oid, make_lfs_pointer

REPO = "org/tiny-model"
CONFIG = b'{"model_type": "llama", "hidden_size": 64}\n'
WEIGHTS = bytes(range(256)) * 64  # 16 KiB, LFS by its suffix
TOKENIZER = b'{"version": "1.0"}\n'


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def raw(url: str, method: str = "GET", headers: dict[str, str] | None = None):
    """One request with http.client: (status, headers with lower-case names, body)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


@pytest.fixture
def repo(hub):
    """A small public repo: a config, LFS weights, a file in a sub-folder. Returns its first commit sha."""
    return hub.add_repo(REPO, {"config.json": CONFIG, "model.safetensors": WEIGHTS,
                               "tokenizer/tokenizer.json": TOKENIZER})


def cdn_location(hub, path: str = "model.safetensors", revision: str = "main") -> str:
    status, headers, _ = raw(hub.file_url(REPO, path, revision), "HEAD")
    assert status == 302
    return headers["location"]


# ------------------------------------------------------------------------------------------- fidelity


def test_commit_shas_are_git_shas_and_deterministic(hub):
    files = {"config.json": b'{"a":1}', "model.safetensors": b"x" * 1000, "sub/dir/t.txt": b"hi"}
    # the sha `git commit` gives for this tree (LFS file stored as its pointer), author/dates as the stand-in's
    assert hub.add_repo("org/m", files) == "06086d25a50fba7af4cd087eb42eead6b7c19432"
    with StandInHub() as other:
        assert other.add_repo("org/m", files) == hub.head("org/m")
    assert git_blob_oid(b"hi") == "32f95c0d1244a78b2be1bab8de17906fabb2c4a8"  # `git hash-object`


def test_lfs_pointer_format():
    pointer = make_lfs_pointer("ab" * 32, 1234)
    assert pointer == (b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"ab" * 32 + b"\nsize 1234\n")


def test_model_info_with_files_metadata(hub, repo):
    info = HfApi(endpoint=hub.url).model_info(REPO, files_metadata=True, token=False)
    assert info.id == REPO and info.sha == repo and len(info.sha) == 40
    assert info.private is False and info.gated is False and info.last_modified is not None
    sib = {s.rfilename: s for s in info.siblings}
    assert set(sib) == {"config.json", "model.safetensors", "tokenizer/tokenizer.json"}
    assert sib["model.safetensors"].lfs.sha256 == sha256(WEIGHTS)
    assert sib["model.safetensors"].lfs.size == sib["model.safetensors"].size == len(WEIGHTS)
    assert sib["model.safetensors"].lfs.pointer_size == len(make_lfs_pointer(sha256(WEIGHTS), len(WEIGHTS)))
    assert sib["config.json"].lfs is None and sib["config.json"].blob_id == git_blob_oid(CONFIG)
    # without blobs=true: names only; expand narrows the answer
    assert HfApi(endpoint=hub.url).model_info(REPO, token=False).siblings[0].size is None
    narrow = HfApi(endpoint=hub.url).model_info(REPO, expand=["sha"], token=False)
    assert narrow.sha == repo and narrow.siblings is None


def test_model_info_by_branch_tag_and_sha(hub, repo):
    hub.tag(REPO, "v1.0")
    second = hub.commit(REPO, {"config.json": b"{}"}, message="Change config")
    api = HfApi(endpoint=hub.url)
    assert second != repo and hub.head(REPO) == second
    assert api.model_info(REPO, revision="main", token=False).sha == second
    assert api.model_info(REPO, revision="v1.0", token=False).sha == repo
    assert api.model_info(REPO, revision=repo, token=False).sha == repo  # old commits stay reachable
    hub.commit(REPO, {"extra.txt": b"x"}, branch="dev/feature")  # new branch, from main; "/" is URL-encoded
    dev = api.model_info(REPO, revision="dev/feature", token=False)
    assert {s.rfilename for s in dev.siblings} >= {"extra.txt", "config.json"}


def test_list_repo_tree(hub, repo):
    api = HfApi(endpoint=hub.url)
    entries = {e.path: e for e in api.list_repo_tree(REPO, recursive=True, token=False)}
    assert set(entries) == {"config.json", "model.safetensors", "tokenizer", "tokenizer/tokenizer.json"}
    weights = entries["model.safetensors"]
    assert isinstance(weights, RepoFile) and weights.lfs.sha256 == sha256(WEIGHTS) and weights.size == len(WEIGHTS)
    assert weights.blob_id == git_blob_oid(make_lfs_pointer(sha256(WEIGHTS), len(WEIGHTS)))
    assert entries["config.json"].lfs is None and entries["config.json"].blob_id == git_blob_oid(CONFIG)
    assert isinstance(entries["tokenizer"], RepoFolder) and len(entries["tokenizer"].tree_id) == 40

    top = {e.path for e in api.list_repo_tree(REPO, revision=repo, token=False)}
    assert top == {"config.json", "model.safetensors", "tokenizer"}
    sub = [e.path for e in api.list_repo_tree(REPO, path_in_repo="tokenizer", token=False)]
    assert sub == ["tokenizer/tokenizer.json"]
    expanded = list(api.list_repo_tree(REPO, expand=True, token=False))
    assert all(e.last_commit.oid == repo for e in expanded)
    assert "link" not in raw(f"{hub.url}/api/models/{REPO}/tree/main?recursive=true&limit=1&cursor=x")[1]


def test_hf_hub_download_by_branch_and_by_sha(hub, repo, tmp_path):
    for name, content in (("model.safetensors", WEIGHTS), ("config.json", CONFIG),
                          ("tokenizer/tokenizer.json", TOKENIZER)):
        path = hf_hub_download(REPO, name, endpoint=hub.url, cache_dir=tmp_path / "a", token=False)
        assert Path(path).read_bytes() == content and repo in path
    hub.commit(REPO, {"config.json": b'{"v": 2}'})
    old = hf_hub_download(REPO, "config.json", revision=repo, endpoint=hub.url, cache_dir=tmp_path / "b", token=False)
    new = hf_hub_download(REPO, "config.json", endpoint=hub.url, cache_dir=tmp_path / "b", token=False)
    assert Path(old).read_bytes() == CONFIG and Path(new).read_bytes() == b'{"v": 2}'


def test_snapshot_download(hub, repo, tmp_path):
    folder = Path(snapshot_download(REPO, endpoint=hub.url, cache_dir=tmp_path, token=False))
    assert folder.name == repo
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert (folder / "tokenizer" / "tokenizer.json").read_bytes() == TOKENIZER


def test_get_hf_file_metadata(hub, repo):
    lfs = get_hf_file_metadata(hf_hub_url(REPO, "model.safetensors", endpoint=hub.url), token=False)
    assert lfs.commit_hash == repo and lfs.etag == sha256(WEIGHTS) and lfs.size == len(WEIGHTS)
    assert lfs.location.startswith(hub.cdn_url + "/")
    plain = get_hf_file_metadata(hf_hub_url(REPO, "config.json", revision=repo, endpoint=hub.url), token=False)
    assert plain.commit_hash == repo and plain.etag == git_blob_oid(CONFIG) and plain.size == len(CONFIG)
    assert plain.location == hub.file_url(REPO, "config.json", repo)


def test_resolve_headers(hub, repo):
    status, headers, body = raw(hub.file_url(REPO, "model.safetensors"), "HEAD")
    assert status == 302 and body == b""
    assert headers["x-repo-commit"] == repo
    assert headers["x-linked-etag"] == f'"{sha256(WEIGHTS)}"' and headers["x-linked-size"] == str(len(WEIGHTS))
    assert headers["etag"].strip('"') == git_blob_oid(make_lfs_pointer(sha256(WEIGHTS), len(WEIGHTS)))
    status, headers, body = raw(headers["location"])
    assert status == 200 and body == WEIGHTS and headers["etag"] == f'"{sha256(WEIGHTS)}"'
    assert headers["accept-ranges"] == "bytes" and headers["content-length"] == str(len(WEIGHTS))
    status, headers, body = raw(hub.file_url(REPO, "config.json"))
    assert status == 200 and body == CONFIG and headers["etag"] == f'"{git_blob_oid(CONFIG)}"'
    assert headers["x-repo-commit"] == repo


def test_keep_alive(hub, repo):
    parts = urlsplit(hub.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        for method, path in (("GET", f"/{REPO}/resolve/main/config.json"),
                             ("HEAD", f"/{REPO}/resolve/main/x.bin"),  # a 404
                             ("HEAD", f"/{REPO}/resolve/main/model.safetensors"),  # a 302
                             ("GET", f"/api/models/{REPO}/revision/main"),
                             ("GET", f"/{REPO}/resolve/main/config.json")):
            conn.request(method, path)
            resp = conn.getresponse()
            resp.read()
            assert resp.version == 11 and not resp.will_close and resp.getheader("Content-Length") is not None
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------- errors


def test_errors_map_to_huggingface_hub_exceptions(hub, repo):
    api = HfApi(endpoint=hub.url)
    hub.add_repo("org/private", {"config.json": CONFIG, "model.safetensors": WEIGHTS}, private=True)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("org/missing", token=False)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("org/missing", token=hub.token)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("org/private", token=False)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("org/private", token="hf_wrong")
    assert api.model_info("org/private", token=hub.token).private is True
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO, revision="no-such-branch", token=False)
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO, revision="0" * 40, token=False)
    with pytest.raises(RevisionNotFoundError):
        list(api.list_repo_tree(REPO, revision="nope", token=False))
    with pytest.raises(RemoteEntryNotFoundError) as missing:
        get_hf_file_metadata(hf_hub_url(REPO, "nope.bin", endpoint=hub.url), token=False)
    assert isinstance(missing.value, EntryNotFoundError)
    assert missing.value.response.headers["X-Repo-Commit"] == repo
    with pytest.raises(RepositoryNotFoundError):
        get_hf_file_metadata(hf_hub_url("org/private", "config.json", endpoint=hub.url), token=False)
    with pytest.raises(RevisionNotFoundError):
        get_hf_file_metadata(hf_hub_url(REPO, "config.json", revision="nope", endpoint=hub.url), token=False)


def test_hf_hub_download_raises_the_typed_errors(hub, repo, tmp_path):
    def download(repo_id, name, **kw):
        return hf_hub_download(repo_id, name, endpoint=hub.url, cache_dir=tmp_path, token=False, **kw)

    with pytest.raises(RepositoryNotFoundError):
        download("org/missing", "config.json")
    with pytest.raises(RevisionNotFoundError):
        download(REPO, "config.json", revision="nope")
    with pytest.raises(EntryNotFoundError):
        download(REPO, "missing.safetensors")
    with pytest.raises(EntryNotFoundError):
        download(REPO, "tokenizer")  # a folder is not a file
    status, headers, _ = raw(hub.file_url(REPO, "config.json", "r\u00e9v"))
    assert status == 404 and headers["x-error-code"] == "RevisionNotFound"


def test_add_repo_checks_its_arguments(hub, repo):
    with pytest.raises(ValueError):
        hub.add_repo(REPO, {"a.txt": b""})  # exists
    with pytest.raises(ValueError):
        hub.add_repo("org/bad", {"../a.txt": b""})
    with pytest.raises(ValueError):
        hub.add_repo("org/bad2", {"a": b"", "a/b": b""})
    assert raw(f"{hub.url}/api/models/org/bad2")[0] == 401  # not half-created
    with pytest.raises(ValueError):
        hub.add_repo("org/bad3", {"a": b""}, gated="sometimes")
    with pytest.raises(KeyError):
        hub.tag(REPO, "v1", revision="nope")


def test_error_statuses_and_bodies(hub, repo):
    status, headers, body = raw(f"{hub.url}/api/models/org/missing")
    assert (status, headers["x-error-code"], headers["content-type"]) == (401, "RepoNotFound",
                                                                         "application/json; charset=utf-8")
    assert body == b'{"error": "Repository not found"}'
    status, headers, _ = raw(f"{hub.url}/api/models/org/missing", headers={"Authorization": f"Bearer {hub.token}"})
    assert (status, headers["x-error-code"]) == (404, "RepoNotFound")
    status, headers, _ = raw(hub.file_url(REPO, "config.json", "nope"))
    assert (status, headers["x-error-code"]) == (404, "RevisionNotFound")
    status, headers, _ = raw(hub.file_url(REPO, "nope.json"))
    assert (status, headers["x-error-code"]) == (404, "EntryNotFound")


def test_gated_repo(hub, tmp_path):
    hub.add_repo("org/gated", {"config.json": CONFIG, "model.safetensors": WEIGHTS}, gated="manual")
    api = HfApi(endpoint=hub.url)
    assert api.model_info("org/gated", token=False).gated == "manual"  # metadata stays public
    url = hf_hub_url("org/gated", "model.safetensors", endpoint=hub.url)
    with pytest.raises(GatedRepoError):
        get_hf_file_metadata(url, token=False)
    with pytest.raises(GatedRepoError):
        get_hf_file_metadata(url, token="hf_not_accepted")
    with pytest.raises(GatedRepoError):
        hf_hub_download("org/gated", "config.json", endpoint=hub.url, cache_dir=tmp_path, token=False)
    status, headers, body = raw(url, "GET", {"Authorization": "Bearer hf_not_accepted"})
    assert (status, headers["x-error-code"]) == (403, "GatedRepo") and b"restricted" in body
    assert raw(url)[0] == 401
    path = hf_hub_download("org/gated", "model.safetensors", endpoint=hub.url, cache_dir=tmp_path, token=hub.token)
    assert Path(path).read_bytes() == WEIGHTS


def test_token_reaches_the_hub_but_not_the_cdn(hub, tmp_path):
    hub.add_repo("org/private", {"config.json": CONFIG, "model.safetensors": WEIGHTS}, private=True)
    for name in ("config.json", "model.safetensors"):
        hf_hub_download("org/private", name, endpoint=hub.url, cache_dir=tmp_path, token=hub.token)
    hub_auth = {r.headers.get("authorization") for r in hub.requests if r.server == "hub"}
    cdn = [r for r in hub.requests if r.server == "cdn"]
    assert hub_auth == {f"Bearer {hub.token}"}
    assert len(cdn) == 1 and cdn[0].method == "GET" and "authorization" not in cdn[0].headers


def test_cdn_checks_its_signature(hub, repo):
    location = cdn_location(hub)
    assert raw(location.replace("Signature=", "Signature=0"))[0] == 403
    assert raw(location.replace("path=model.safetensors", "path=other.bin"))[0] == 403


# ------------------------------------------------------------------------------------------- ranges


@pytest.mark.parametrize("header, start, end", [("bytes=100-", 100, len(WEIGHTS) - 1), ("bytes=10-19", 10, 19),
                                                ("bytes=-5", len(WEIGHTS) - 5, len(WEIGHTS) - 1),
                                                ("bytes=16000-99999", 16000, len(WEIGHTS) - 1)])
def test_range_requests(hub, repo, header, start, end):
    status, headers, body = raw(cdn_location(hub), headers={"Range": header})
    assert status == 206 and body == WEIGHTS[start:end + 1]
    assert headers["content-range"] == f"bytes {start}-{end}/{len(WEIGHTS)}"
    assert headers["content-length"] == str(end - start + 1)


def test_range_past_the_end_is_416(hub, repo):
    status, headers, _ = raw(cdn_location(hub), headers={"Range": f"bytes={len(WEIGHTS)}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{len(WEIGHTS)}"


def test_range_on_a_regular_file_and_bytes_sent(hub, repo):
    status, headers, body = raw(hub.file_url(REPO, "config.json"), headers={"Range": "bytes=5-"})
    assert status == 206 and body == CONFIG[5:]
    raw(cdn_location(hub), headers={"Range": "bytes=1000-"})
    assert hub.bytes_sent[(REPO, "config.json")] == len(CONFIG) - 5
    assert hub.bytes_sent[(REPO, "model.safetensors")] == len(WEIGHTS) - 1000
    hub.reset_stats()
    assert hub.bytes_sent == {} and hub.requests == []


def test_files_on_disk_are_served_from_disk(hub, tmp_path):
    big = tmp_path / "big.bin"
    data = hashlib.sha256(b"seed").digest() * (12 * 1024 * 1024 // 32 + 7)  # > 10 MiB: LFS whatever the name
    big.write_bytes(data)
    small = tmp_path / "small.json"
    small.write_bytes(CONFIG)
    hub.add_repo("org/disk", {"weights.dat": big, "config.json": small})
    entries = {e.path: e for e in HfApi(endpoint=hub.url).list_repo_tree("org/disk", token=False)}
    assert entries["weights.dat"].lfs.sha256 == sha256(data) and entries["config.json"].lfs is None
    assert entries["config.json"].blob_id == git_blob_oid(CONFIG)
    status, headers, _ = raw(hub.file_url("org/disk", "weights.dat"), "HEAD")
    loc = headers["location"]
    assert raw(loc)[2] == data
    assert raw(loc, headers={"Range": "bytes=5000000-5000099"})[2] == data[5000000:5000100]
    assert raw(hub.file_url("org/disk", "config.json"))[2] == CONFIG


# ------------------------------------------------------------------------------------------- faults


def test_fault_truncate(hub, repo):
    hub.fault(REPO, "model.safetensors", "truncate", after=1000)
    loc = cdn_location(hub)
    parts = urlsplit(loc)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", f"{parts.path}?{parts.query}")
    resp = conn.getresponse()
    assert resp.getheader("Content-Length") == str(len(WEIGHTS))
    with pytest.raises(http.client.IncompleteRead) as cut:
        resp.read()
    assert cut.value.partial == WEIGHTS[:1000]
    conn.close()
    assert hub.bytes_sent[(REPO, "model.safetensors")] == 1000
    status, _, body = raw(loc, headers={"Range": "bytes=15500-"})  # a short enough tail gets through
    assert status == 206 and body == WEIGHTS[15500:]


def test_fault_truncate_on_a_regular_file_and_times(hub, repo):
    hub.fault(REPO, "config.json", "truncate", after=3, times=1)
    with pytest.raises(http.client.IncompleteRead):
        raw(hub.file_url(REPO, "config.json"))
    assert raw(hub.file_url(REPO, "config.json"))[2] == CONFIG


def test_fault_ignore_range(hub, repo):
    hub.fault(REPO, "model.safetensors", "ignore_range")
    status, headers, body = raw(cdn_location(hub), headers={"Range": "bytes=100-"})
    assert status == 200 and body == WEIGHTS and "content-range" not in headers


def test_fault_wrong_content_range(hub, repo):
    hub.fault(REPO, "model.safetensors", "wrong_content_range")
    status, headers, body = raw(cdn_location(hub), headers={"Range": "bytes=100-199"})
    assert status == 206 and headers["content-range"] == f"bytes 0-99/{len(WEIGHTS)}" and body == WEIGHTS[:100]
    assert raw(cdn_location(hub))[2] == WEIGHTS  # no Range: untouched


def test_fault_flip_byte(hub, repo):
    hub.fault(REPO, "model.safetensors", "flip_byte", offset=5000)
    body = raw(cdn_location(hub))[2]
    assert len(body) == len(WEIGHTS) and body != WEIGHTS
    assert [i for i in range(len(WEIGHTS)) if body[i] != WEIGHTS[i]] == [5000]
    assert raw(cdn_location(hub), headers={"Range": "bytes=4990-5009"})[2][10] == WEIGHTS[5000] ^ 0xFF


def test_fault_html_200(hub, repo, tmp_path):
    hub.fault(REPO, "config.json", "html_200")
    status, headers, body = raw(hub.file_url(REPO, "config.json"))
    assert status == 200 and headers["content-type"].startswith("text/html") and body.startswith(b"<!DOCTYPE html>")
    assert raw(hub.file_url(REPO, "config.json"), "HEAD")[1]["content-length"] == str(len(CONFIG))  # HEAD is honest


def test_fault_move_after_lookup(hub, repo, tmp_path):
    hub.fault(REPO, "config.json", "move_after_lookup", content=b'{"moved": true}')
    api = HfApi(endpoint=hub.url)
    info = api.model_info(REPO, token=False)
    assert info.sha == repo and hub.head(REPO) != repo  # answered the old commit, then the branch moved
    by_branch = hf_hub_download(REPO, "config.json", endpoint=hub.url, cache_dir=tmp_path, token=False)
    by_sha = hf_hub_download(REPO, "config.json", revision=info.sha, endpoint=hub.url, cache_dir=tmp_path,
                             token=False)
    assert Path(by_branch).read_bytes() == b'{"moved": true}' and Path(by_sha).read_bytes() == CONFIG
    moved = hub.head(REPO)
    api.model_info(REPO, token=False)
    assert hub.head(REPO) == moved  # one-shot


def test_fault_move_after_lookup_via_tree(hub, repo):
    hub.fault(REPO, "model.safetensors", "move_after_lookup")
    list(HfApi(endpoint=hub.url).list_repo_tree(REPO, token=False))
    entries = {e.path: e for e in HfApi(endpoint=hub.url).list_repo_tree(REPO, token=False)}
    assert entries["model.safetensors"].lfs.sha256 != sha256(WEIGHTS)


def test_fault_throttle(hub, repo):
    hub.fault(REPO, "model.safetensors", "throttle", bytes_per_s=128 * 1024)
    start = time.monotonic()
    body = raw(cdn_location(hub))[2]
    elapsed = time.monotonic() - start
    assert body == WEIGHTS and 0.1 <= elapsed < 2  # 16 KiB at 128 KiB/s: ~0.125 s


def test_stop_cuts_a_throttled_download():
    hub = StandInHub().start()
    hub.add_repo(REPO, {"model.safetensors": WEIGHTS})
    hub.fault(REPO, "model.safetensors", "throttle", bytes_per_s=4096)
    loc = cdn_location(hub)
    outcome = []

    def fetch():
        try:
            outcome.append(raw(loc)[2])
        except (http.client.IncompleteRead, ConnectionError) as e:
            outcome.append(e)

    t = threading.Thread(target=fetch)
    t.start()
    deadline = time.monotonic() + 10  # the first bytes go out at once; the full 16 KiB would take 4 s
    while not hub.bytes_sent[(REPO, "model.safetensors")] and time.monotonic() < deadline:
        time.sleep(0.01)
    hub.stop()
    t.join(5)
    assert not t.is_alive() and isinstance(outcome[0], Exception)
    assert 0 < hub.bytes_sent[(REPO, "model.safetensors")] < len(WEIGHTS)


def test_fault_status(hub, repo):
    hub.fault(REPO, "model.safetensors", "status", code=503, times=2)
    loc = cdn_location(hub)
    assert [raw(loc)[0] for _ in range(3)] == [503, 503, 200]
    hub.fault(REPO, "config.json", "status", code=500)
    assert raw(hub.file_url(REPO, "config.json"))[0] == 500
    assert raw(hub.file_url(REPO, "config.json"), "HEAD")[0] == 200  # HEADs are not faulted
    hub.clear_faults()
    assert raw(hub.file_url(REPO, "config.json"))[0] == 200


def test_fault_arguments_are_checked(hub):
    with pytest.raises(ValueError):
        hub.fault(REPO, "x", "explode")
    with pytest.raises(TypeError):
        hub.fault(REPO, "x", "truncate")
    with pytest.raises(TypeError):
        hub.fault(REPO, "x", "flip_byte", ofset=3)
