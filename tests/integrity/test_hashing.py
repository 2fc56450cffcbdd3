"""The hashing engine and manifests: digests, parallelism, symlink safety, the stat cache, blake3.

Real files in tmp_path; digests are checked against hashlib and coreutils ``sha256sum``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from imageworks_models.integrity import hashing
from imageworks_models.errors import IntegrityError, NotVerifiableError
from imageworks_models.integrity.manifest import FileRecord, aggregate_of, build_manifest, diff
from imageworks_models.pluginhost.manager import get_plugins
from imageworks_models.integrity.statcache import StatCache

HOUR_AGO = time.time() - 3600


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def backdate(*paths) -> None:
    for p in paths:
        os.utime(p, (HOUR_AGO, HOUR_AGO), follow_symlinks=False)


def make_model(root, files: dict[str, bytes]):
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


class Recorder(hashing.Progress):
    def __init__(self):
        self.lock = threading.Lock()
        self.total = None
        self.advanced = 0
        self.threads = set()
        self.finished = 0

    def start(self, *, total_bytes, files, label):
        self.total = total_bytes

    def advance(self, nbytes):
        with self.lock:
            self.advanced += nbytes
            self.threads.add(threading.current_thread().name)

    def finish(self):
        self.finished += 1


# -- single files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, hashing.BLOCK - 1, hashing.BLOCK, hashing.BLOCK + 1, 3 * hashing.BLOCK + 7])
@pytest.mark.parametrize("pipelined", [False, True], ids=["plain", "pipelined"])
def test_digest_equals_hashlib_at_block_boundaries(tmp_path, size, pipelined):
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    got = hashing.hash_one(path, algorithm="sha256", new=hashlib.sha256, pipelined=pipelined)
    assert got.digest == "sha256:" + sha256_hex(data)
    assert got.stat.st_size == size


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="coreutils sha256sum is not installed")
def test_hash_file_equals_sha256sum_output(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(os.urandom(hashing.PIPELINE_MIN + 12345))  # big enough for the pipelined reader
    out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout
    assert hashing.hash_file(path) == "sha256:" + out.split()[0]


def test_hash_file_refuses_a_symlink_and_a_fifo(tmp_path):
    target = tmp_path / "real"
    target.write_bytes(b"x")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(IntegrityError, match="symbolic link"):
        hashing.hash_file(link)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(IntegrityError, match="not a regular file"):
        hashing.hash_file(fifo)  # O_NONBLOCK: returns at once instead of waiting for a writer


def test_a_file_replaced_after_the_walk_is_not_hashed(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"old")
    seen = os.lstat(path)
    replacement = tmp_path / "new.bin"
    replacement.write_bytes(b"new")
    os.replace(replacement, path)  # another inode now sits at the walked path
    with pytest.raises(hashing.FileChangedError, match="replaced"):
        hashing.hash_one(path, algorithm="sha256", new=hashlib.sha256, expect=seen)


def test_a_symlink_swapped_in_after_the_walk_is_not_followed(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"weights")
    seen = os.lstat(path)
    secret = tmp_path / "secret"
    secret.write_bytes(b"not yours")
    path.unlink()
    path.symlink_to(secret)
    with pytest.raises(IntegrityError, match="symbolic link"):
        hashing.hash_one(path, algorithm="sha256", new=hashlib.sha256, expect=seen)


class Writer(Recorder):
    """Rewrites the file being hashed from inside the read loop, ``times`` times in all (same size,
    a new mtime each time, as a download writing in place would)."""

    def __init__(self, path, times):
        super().__init__()
        self.path, self.left = path, times

    def advance(self, nbytes):
        super().advance(nbytes)
        if self.left:
            self.left -= 1
            with open(self.path, "r+b") as f:
                f.write(os.urandom(8))
            st = os.stat(self.path)
            os.utime(self.path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000 * (self.left + 1)))


def test_a_file_written_during_hashing_is_hashed_again(tmp_path):
    path = tmp_path / "growing.bin"
    path.write_bytes(os.urandom(1000))
    got = hashing.hash_one(path, algorithm="sha256", new=hashlib.sha256, progress=Writer(path, 1))
    assert got.digest == "sha256:" + sha256_hex(path.read_bytes())  # the second read, of the final bytes


def test_a_file_that_keeps_changing_is_an_error_not_a_digest(tmp_path):
    path = tmp_path / "growing.bin"
    path.write_bytes(os.urandom(1000))
    with pytest.raises(hashing.FileChangedError, match="kept changing"):
        hashing.hash_one(path, algorithm="sha256", new=hashlib.sha256, progress=Writer(path, 2))


# -- many files ------------------------------------------------------------------------------------


def test_hash_many_runs_files_in_parallel_and_matches_one_by_one(tmp_path):
    blobs = {f"f{i}": os.urandom(3 * hashing.BLOCK + i) for i in range(4)}
    jobs = []
    for key, data in blobs.items():
        (tmp_path / key).write_bytes(data)
        jobs.append(hashing.Job(key, str(tmp_path / key), len(data)))
    progress = Recorder()
    results = hashing.hash_many(jobs, algorithm="sha256", new=hashlib.sha256, workers=2, progress=progress)
    assert {k: r.digest for k, r in results.items()} == {k: "sha256:" + sha256_hex(d) for k, d in blobs.items()}
    assert progress.advanced == sum(len(d) for d in blobs.values())
    assert len({t for t in progress.threads if t.startswith("imageworks-hash")}) == 2


def test_one_unreadable_file_does_not_stop_the_others(tmp_path):
    (tmp_path / "good").write_bytes(b"good")
    os.mkfifo(tmp_path / "pipe")
    jobs = [hashing.Job("good", str(tmp_path / "good"), 4), hashing.Job("pipe", str(tmp_path / "pipe"), 0)]
    results = hashing.hash_many(jobs, algorithm="sha256", new=hashlib.sha256, workers=2)
    assert results["good"].digest == "sha256:" + sha256_hex(b"good")
    assert isinstance(results["pipe"], IntegrityError)


def test_workers_setting_zero_means_one_per_usable_core():
    assert hashing.workers_for(0) == hashing.usable_cpus() >= 1
    assert hashing.workers_for(3) == 3


# -- manifests -------------------------------------------------------------------------------------


FILES = {"config.json": b'{"a": 1}', "model.safetensors": b"W" * 5000, "sub/tokenizer.json": b"tok"}


def test_manifest_lists_every_file_with_size_and_digest(tmp_path):
    root = make_model(tmp_path / "m", FILES)
    progress = Recorder()
    m = build_manifest(root, progress=progress)
    assert [f.as_dict() for f in m.files] == [
        {"path": p, "size": len(d), "digest": "sha256:" + sha256_hex(d)} for p, d in sorted(FILES.items())]
    assert m.total_bytes == m.hashed_bytes == progress.total == progress.advanced == sum(map(len, FILES.values()))
    assert progress.finished == 1


def test_aggregate_is_the_documented_digest_of_sorted_json_lines(tmp_path):
    root = make_model(tmp_path / "m", FILES)
    m = build_manifest(root)
    lines = "".join(json.dumps([p, len(d), "sha256:" + sha256_hex(d), None], ensure_ascii=False,
                               separators=(",", ":")) + "\n" for p, d in sorted(FILES.items()))
    assert m.aggregate == "sha256:" + sha256_hex(lines.encode())


@pytest.mark.parametrize("change", ["rename", "add", "remove", "modify"])
def test_aggregate_changes_when_the_file_set_or_bytes_change(tmp_path, change):
    root = make_model(tmp_path / "m", FILES)
    before = build_manifest(root)
    if change == "rename":
        (root / "config.json").rename(root / "config2.json")
    elif change == "add":
        (root / "extra.txt").write_bytes(b"")
    elif change == "remove":
        (root / "sub" / "tokenizer.json").unlink()
    else:
        (root / "model.safetensors").write_bytes(b"V" + b"W" * 4999)
    after = build_manifest(root)
    assert after.aggregate != before.aggregate
    changes = diff(before.files, after.files)
    kinds = {"rename": "renamed", "add": "extra", "remove": "missing", "modify": "changed"}
    assert [c.change for c in changes] == [kinds[change]]


def test_a_single_file_model_is_a_one_file_manifest(tmp_path):
    gguf = tmp_path / "model-q4_k_m.gguf"
    gguf.write_bytes(b"GGUF" + os.urandom(100))
    m = build_manifest(gguf)
    assert [(f.path, f.size) for f in m.files] == [("model-q4_k_m.gguf", 104)]


def test_links_are_recorded_and_never_followed_out_of_the_folder(tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"secret")
    root = make_model(tmp_path / "m", FILES)
    (root / "escape").symlink_to(outside)
    (root / "inner").symlink_to("config.json")
    m = build_manifest(root)
    recs = {f.path: f for f in m.files}
    assert recs["escape"].as_dict() == {"path": "escape", "size": None, "digest": None, "link": str(outside)}
    assert recs["inner"].link == "config.json" and recs["inner"].digest is None
    outside.write_bytes(b"changed outside: not our file")
    assert build_manifest(root).aggregate == m.aggregate
    (root / "inner").unlink()
    (root / "inner").symlink_to("sub/tokenizer.json")
    swapped = build_manifest(root)
    assert swapped.aggregate != m.aggregate
    assert [(c.path, c.change) for c in diff(m.files, swapped.files)] == [("inner", "changed")]


def test_a_link_to_a_folder_is_not_entered(tmp_path):
    elsewhere = make_model(tmp_path / "elsewhere", {"big.bin": b"x" * 100})
    root = make_model(tmp_path / "m", FILES)
    (root / "more").symlink_to(elsewhere, target_is_directory=True)
    m = build_manifest(root)
    assert "more/big.bin" not in {f.path for f in m.files}
    assert {f.path: f.link for f in m.files}["more"] == str(elsewhere)


def test_special_files_are_recorded_and_never_opened(tmp_path):
    root = make_model(tmp_path / "m", FILES)
    os.mkfifo(root / "pipe")
    m = build_manifest(root)  # would block forever if the FIFO were opened for reading
    assert {f.path: f.special for f in m.files}["pipe"] == "fifo"
    assert not m.errors


def test_huggingface_cache_snapshot_links_are_hashed_inside_the_repo_folder(tmp_path):
    repo = tmp_path / "hub" / "models--org--tiny"
    data = b"safetensors bytes" * 100
    blob = repo / "blobs" / sha256_hex(data)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    snap = repo / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (snap / "model.safetensors").symlink_to(f"../../blobs/{blob.name}")
    outside = tmp_path / "outside"
    outside.write_bytes(b"x")
    (snap / "stray").symlink_to(outside)
    m = build_manifest(snap)
    recs = {f.path: f for f in m.files}
    assert recs["model.safetensors"].digest == "sha256:" + sha256_hex(data)  # equals the blob's name, as on the Hub
    assert recs["model.safetensors"].link == f"../../blobs/{blob.name}"
    assert recs["stray"].digest is None  # outside the repo folder: recorded, not followed
    blob.write_bytes(b"X" + data[1:])  # same size, one byte changed in the blob store
    assert build_manifest(snap).aggregate != m.aggregate


def test_huggingface_download_bookkeeping_is_skipped(tmp_path):
    root = make_model(tmp_path / "m", {**FILES, ".cache/huggingface/download/model.safetensors.metadata": b"etag"})
    assert ".cache/huggingface/download/model.safetensors.metadata" not in {f.path for f in build_manifest(root).files}


@pytest.mark.skipif(sys.platform != "linux", reason="only Linux lets a file name be arbitrary bytes")
def test_a_file_name_that_is_not_utf8_is_a_clear_error(tmp_path):
    root = make_model(tmp_path / "m", FILES)
    with open(os.path.join(os.fsencode(root), b"bad-\xff.bin"), "wb") as f:
        f.write(b"x")
    with pytest.raises(IntegrityError, match="not valid UTF-8"):
        build_manifest(root)


def test_a_missing_root_is_not_verifiable(tmp_path):
    with pytest.raises(NotVerifiableError, match="does not exist"):
        build_manifest(tmp_path / "gone")


def test_diff_reports_a_rename_once_and_compares_legacy_records_without_sizes():
    a = FileRecord("a.bin", 3, "sha256:" + "1" * 64)
    renamed = diff([a], [FileRecord("b.bin", 3, a.digest)])
    assert [(c.change, c.previous_path, c.path) for c in renamed] == [("renamed", "a.bin", "b.bin")]
    legacy = FileRecord("a.bin", None, a.digest)  # the earlier tool recorded no sizes
    assert diff([legacy], [a]) == []
    assert aggregate_of([a], algorithm="sha256", new=hashlib.sha256) != \
        aggregate_of([FileRecord("b.bin", 3, a.digest)], algorithm="sha256", new=hashlib.sha256)


# -- the stat cache --------------------------------------------------------------------------------


def test_quick_reuses_digests_of_unchanged_files_only(tmp_path):
    cache_dir = tmp_path / "cache"
    root = make_model(tmp_path / "m", FILES)
    backdate(*(root / p for p in FILES))
    full = build_manifest(root, cache_dir=cache_dir)
    quick = build_manifest(root, cache_dir=cache_dir, quick=True)
    assert (quick.hashed_files, quick.cached_files, quick.aggregate) == (0, 3, full.aggregate)
    (root / "config.json").write_bytes(b'{"a": 2}')  # same size, new mtime
    again = build_manifest(root, cache_dir=cache_dir, quick=True)
    assert again.hashed_files == 1 and again.aggregate != full.aggregate


def test_quick_rehashes_files_written_too_close_to_their_hashing(tmp_path):
    cache_dir = tmp_path / "cache"
    root = make_model(tmp_path / "m", FILES)  # mtimes are "now": racy
    build_manifest(root, cache_dir=cache_dir)
    assert build_manifest(root, cache_dir=cache_dir, quick=True).hashed_files == 3


def test_quick_notices_a_change_that_keeps_size_and_mtime(tmp_path):
    cache_dir = tmp_path / "cache"
    root = make_model(tmp_path / "m", FILES)
    path = root / "model.safetensors"
    backdate(path, root / "config.json", root / "sub" / "tokenizer.json")
    build_manifest(root, cache_dir=cache_dir)
    path.write_bytes(b"V" + b"W" * 4999)
    backdate(path)  # mtime put back, as a careless copy tool might; ctime still moved
    m = build_manifest(root, cache_dir=cache_dir, quick=True)
    assert m.hashed_files == 1
    assert {f.path: f.digest for f in m.files}["model.safetensors"] == "sha256:" + sha256_hex(path.read_bytes())


def test_quick_never_reuses_a_digest_of_another_algorithm(tmp_path):
    pytest.importorskip("blake3", reason="blake3 is an optional extra")
    cache_dir = tmp_path / "cache"
    root = make_model(tmp_path / "m", FILES)
    backdate(*(root / p for p in FILES))
    build_manifest(root, cache_dir=cache_dir)
    m = build_manifest(root, cache_dir=cache_dir, quick=True, algorithm="blake3")
    assert m.hashed_files == 3 and all(f.digest.startswith("blake3:") for f in m.files)


@pytest.mark.parametrize("garbage", [b"", b"{not json", b'{"version": 1, "root": "/elsewhere", "files": {}}',
                                     b'{"version": 1, "root": null, "files": {"config.json": "x"}}'])
def test_a_corrupt_or_foreign_cache_file_is_ignored(tmp_path, garbage):
    cache_dir = tmp_path / "cache"
    root = make_model(tmp_path / "m", FILES)
    backdate(*(root / p for p in FILES))
    build_manifest(root, cache_dir=cache_dir)
    (cache_file,) = (cache_dir / "stat-cache").glob("*.json")
    cache_file.write_bytes(garbage)
    m = build_manifest(root, cache_dir=cache_dir, quick=True)
    assert m.hashed_files == 3
    assert json.loads(cache_file.read_bytes())["version"] == 1  # rewritten whole


def test_the_cache_forgets_removed_files(tmp_path):
    cache_dir = tmp_path / "cache"
    root = make_model(tmp_path / "m", FILES)
    build_manifest(root, cache_dir=cache_dir)
    (root / "config.json").unlink()
    build_manifest(root, cache_dir=cache_dir)
    assert set(StatCache.for_root(cache_dir, root).files) == {"model.safetensors", "sub/tokenizer.json"}


def _remembered(cache_dir, root):
    (cache_file,) = (cache_dir / "stat-cache").glob("*.json")
    return cache_file, json.loads(cache_file.read_bytes()).get("aggregate")


def test_an_unchanged_quick_check_reuses_the_remembered_aggregate(tmp_path):
    cache_dir = tmp_path / "cache"
    root = make_model(tmp_path / "m", FILES)
    backdate(*(root / p for p in FILES))
    full = build_manifest(root, cache_dir=cache_dir)
    cache_file, remembered = _remembered(cache_dir, root)
    assert remembered == ["sha256", full.aggregate]
    # the remembered value is what an all-hits check answers: planted, it comes back (nothing recomputed it)
    planted = "sha256:" + "ab" * 32
    doc = json.loads(cache_file.read_bytes())
    cache_file.write_text(json.dumps({**doc, "aggregate": ["sha256", planted]}))
    assert build_manifest(root, cache_dir=cache_dir, quick=True).aggregate == planted
    os.utime(root / "config.json", (HOUR_AGO - 60, HOUR_AGO - 60))  # one stat moves: no longer all hits
    assert build_manifest(root, cache_dir=cache_dir, quick=True).aggregate == full.aggregate


@pytest.mark.parametrize("change", ["edit", "add", "remove", "rename"])
def test_any_change_in_the_folder_recomputes_the_aggregate(tmp_path, change):
    cache_dir = tmp_path / "cache"
    root = make_model(tmp_path / "m", FILES)
    backdate(*(root / p for p in FILES))
    build_manifest(root, cache_dir=cache_dir, quick=True)
    if change == "edit":
        (root / "config.json").write_bytes(b'{"changed": true}')
    elif change == "add":
        (root / "extra.txt").write_bytes(b"new")
    elif change == "remove":
        (root / "config.json").unlink()
    else:
        (root / "config.json").rename(root / "config2.json")
    quick = build_manifest(root, cache_dir=cache_dir, quick=True)
    assert quick.aggregate == build_manifest(root).aggregate  # the uncached truth
    assert _remembered(cache_dir, root)[1] == ["sha256", quick.aggregate]


def test_a_folder_with_a_link_remembers_no_aggregate(tmp_path):
    cache_dir = tmp_path / "cache"
    root = make_model(tmp_path / "m", FILES)
    os.symlink("config.json", root / "alias.json")
    backdate(*(root / p for p in FILES))
    build_manifest(root, cache_dir=cache_dir)
    assert _remembered(cache_dir, root)[1] is None
    os.rename(root / "alias.json", tmp_path / "gone")  # the link target text is not in the cache: never trusted
    build_manifest(root, cache_dir=cache_dir)
    assert _remembered(cache_dir, root)[1] is not None


# -- hashers ---------------------------------------------------------------------------------------


def test_blake3_digests_equal_the_blake3_package(tmp_path):
    blake3 = pytest.importorskip("blake3", reason="blake3 is an optional extra")
    data = os.urandom(3 * hashing.BLOCK + 5)
    (tmp_path / "f").write_bytes(data)
    assert hashing.hash_file(tmp_path / "f", algorithm="blake3") == "blake3:" + blake3.blake3(data).hexdigest()


def test_blake3_is_offered_only_when_the_package_is_installed(tmp_path):
    hide = ("import sys, importlib.abc\n"
            "class Hide(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name == 'blake3': raise ModuleNotFoundError(name)\n"
            "sys.meta_path.insert(0, Hide())\n")
    (tmp_path / "sitecustomize.py").write_text(hide)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    code = "from imageworks_models.pluginhost.manager import get_plugins; print(sorted(get_plugins().hashers))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['sha256']"
    from imageworks_models.errors import HasherNotFoundError
    from imageworks_models.pluginhost.manager import PluginHost

    host = PluginHost()
    host.hashers.pop("blake3", None)
    with pytest.raises(HasherNotFoundError, match="'blake3'") as info:
        host.hasher("blake3")
    assert "pip install 'imageworks-models[blake3]'" in info.value.hint


def test_unknown_algorithm_names_the_installed_ones(tmp_path):
    from imageworks_models.errors import HasherNotFoundError

    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(HasherNotFoundError, match="sha256"):
        hashing.hash_file(tmp_path / "f", algorithm="md5", plugins=get_plugins())


class _Made:
    """A hasher constructor that records which thread asked for each object it made."""

    def __init__(self):
        self.threads: list[str] = []

    def __call__(self):
        self.threads.append(threading.current_thread().name)
        return hashlib.sha256()


def _mt_host(single):
    from imageworks_models.plugin.records import Hasher

    host, new = get_plugins(), _Made()
    host.hashers["fake-mt"] = Hasher(name="fake-mt", description="test", new=new, multithreaded=True,
                                     single_threaded=single)
    return host, new


def test_a_multithreaded_hasher_with_a_single_threaded_form_hashes_similar_files_one_per_thread(tmp_path):
    root = make_model(tmp_path / "m", {f"w{i}.bin": os.urandom(hashing.BLOCK + i) for i in range(4)})
    single = _Made()
    host, new = _mt_host(single)
    seen = Recorder()
    got = build_manifest(root, algorithm="fake-mt", plugins=host, workers=2, progress=seen)
    assert len(single.threads) == 4 and len(set(single.threads)) == 2  # each file its own object, two threads
    assert new.threads == [threading.current_thread().name]  # only the aggregate, on this thread
    assert len(seen.threads) == 2
    plain = build_manifest(root, algorithm="sha256", plugins=host, workers=1)
    assert [f.digest.split(":")[1] for f in got.files] == [f.digest.split(":")[1] for f in plain.files]


def test_a_file_with_most_of_the_bytes_is_hashed_alone_with_the_multithreaded_form(tmp_path):
    files = {"big.bin": os.urandom(4 * hashing.BLOCK), **{f"s{i}.bin": os.urandom(1000 + i) for i in range(3)}}
    root = make_model(tmp_path / "m", files)
    single = _Made()
    host, new = _mt_host(single)
    seen = Recorder()
    build_manifest(root, algorithm="fake-mt", plugins=host, workers=2, progress=seen)
    assert single.threads == []
    assert len(new.threads) == 5 and seen.threads == {threading.current_thread().name}


@pytest.mark.parametrize("workers,sizes,expect", [
    (2, [10, 10, 10], "single"), (2, [40, 10, 10, 10], "new"), (2, [30, 10, 10, 10], "single"), (2, [10], "new"), (1, [10, 10], "new"),
    (4, [5, 5], "single")])
def test_plan_threads(workers, sizes, expect):
    from imageworks_models.plugin.records import Hasher

    jobs = [hashing.Job(str(i), str(i), size) for i, size in enumerate(sizes)]
    mt = Hasher(name="x", description="", new=hashlib.sha256, multithreaded=True, single_threaded=hashlib.sha1)
    new, threads = hashing.plan_threads(mt, jobs, workers)
    assert (new, threads) == ((hashlib.sha1, workers) if expect == "single" else (hashlib.sha256, 1))
    plain = Hasher(name="y", description="", new=hashlib.sha256)
    assert hashing.plan_threads(plain, jobs, workers) == (hashlib.sha256, workers)
    no_single = Hasher(name="z", description="", new=hashlib.sha256, multithreaded=True)
    assert hashing.plan_threads(no_single, jobs, workers) == (hashlib.sha256, 1)


def test_a_multithreaded_hasher_gets_one_file_at_a_time(tmp_path):
    from imageworks_models.plugin.records import Hasher

    root = make_model(tmp_path / "m", {f"w{i}.bin": os.urandom(hashing.BLOCK + i) for i in range(4)})
    host = get_plugins()
    host.hashers["fake-mt"] = Hasher(name="fake-mt", description="test", new=hashlib.sha256, multithreaded=True)
    host.hashers["fake-st"] = Hasher(name="fake-st", description="test", new=hashlib.sha256)
    one, many = Recorder(), Recorder()
    a = build_manifest(root, algorithm="fake-mt", plugins=host, workers=2, progress=one)
    b = build_manifest(root, algorithm="fake-st", plugins=host, workers=2, progress=many)
    assert one.threads == {threading.current_thread().name}  # its update() spreads over the cores itself
    assert len(many.threads) == 2
    assert [f.digest.split(":")[1] for f in a.files] == [f.digest.split(":")[1] for f in b.files]
