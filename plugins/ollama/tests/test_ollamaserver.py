"""The test helpers ollamastore (an Ollama model store on disk) and ollamaserver (a stand-in Ollama server),
checked against Ollama's on-disk layout and against the real ``ollama`` Python client (conftest.py puts this
folder on sys.path)."""

import hashlib
import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta

import gguf
import httpx
import ollama
import pytest
from ollamaserver import StandInOllama, parse_keep_alive
from ollamastore import (
    blob_path,
    find_model,
    list_models,
    parse_served_id,
    put_blob_file,
    read_gguf_kv,
    served_id_of,
    write_gguf_blob,
    write_model,
)

pytestmark = pytest.mark.usefixtures("imageworks_isolated")  # from imageworks_models.pytest_plugin

HF = {"host": "hf.co", "namespace": "bartowski", "family": "qwen2", "model_type": "7.6B"}
HF_ID = "hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M"


@pytest.fixture
def store(tmp_path):
    return tmp_path / "models"


@pytest.fixture
def server(store):
    catalogue = {"smollm2:135m": lambda s: write_model(s, "smollm2", "135m", model_type="135M", file_type="Q8_0",
                                                       gguf_file_type=7)}
    with StandInOllama(store, catalogue=catalogue) as srv:
        yield srv


@pytest.fixture
def client(server):
    with ollama.Client(host=server.url) as c:
        yield c


def blob_files(store):
    return {p.name for p in (store / "blobs").iterdir()}


# --- the store ------------------------------------------------------------------------------------------------


def test_store_layout_is_ollamas(store):
    info = write_model(store, "llama3.1", "8b", file_type="Q8_0", gguf_file_type=7, license="MIT",
                       params={"stop": ["<|eot_id|>"], "temperature": 0.6})
    vision = write_model(store, "llava", "7b", projector=True, params=None)

    assert info.manifest_path == store / "manifests" / "registry.ollama.ai" / "library" / "llama3.1" / "8b"
    assert all(re.fullmatch(r"sha256-[0-9a-f]{64}", name) for name in blob_files(store))  # no partial left
    data = info.manifest_path.read_bytes()
    assert info.manifest_digest == hashlib.sha256(data).hexdigest()
    assert data.endswith(b"}\n") and b" " not in data  # Go's json.Encoder: compact, newline-terminated
    manifest = json.loads(data)
    assert list(manifest) == ["schemaVersion", "mediaType", "config", "layers"]
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert [layer["mediaType"].rsplit(".", 1)[1] for layer in manifest["layers"]] == [
        "model", "template", "params", "license"]
    for layer in manifest["layers"] + [manifest["config"]]:
        assert list(layer) == ["mediaType", "digest", "size"]
        blob = blob_path(store, layer["digest"]).read_bytes()
        assert layer["digest"] == "sha256:" + hashlib.sha256(blob).hexdigest()
        assert layer["size"] == len(blob)
    assert info.size == sum(layer["size"] for layer in manifest["layers"]) + manifest["config"]["size"]

    config = json.loads(blob_path(store, manifest["config"]["digest"]).read_bytes())
    assert config == info.config == {
        "model_format": "gguf", "model_family": "llama", "model_families": ["llama"], "model_type": "8.0B",
        "file_type": "Q8_0", "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in manifest["layers"]]}}
    params = blob_path(store, manifest["layers"][2]["digest"]).read_bytes()
    assert params == b'{"stop":["\\u003c|eot_id|\\u003e"],"temperature":0.6}\n'  # as Go escapes it

    reader = gguf.GGUFReader(blob_path(store, info.model_digest))
    assert reader.fields["general.file_type"].contents() == 7
    assert reader.fields["general.architecture"].contents() == "llama"
    assert len(reader.tensors) == 1
    assert read_gguf_kv(blob_path(store, vision.projector_digest))["general.architecture"] == "clip"
    assert [layer["mediaType"].rsplit(".", 1)[1] for layer in vision.layers] == ["model", "projector", "template"]


def test_store_hf_model_and_shared_blob(store):
    hf = write_model(store, "Qwen2.5-7B-Instruct-GGUF", "Q4_K_M", **HF)
    first = write_model(store, "llama3.1", "8b")
    second = write_model(store, "llama3.1", "latest", model_blob=first.model_digest)

    assert hf.manifest_path == store / "manifests" / "hf.co" / "bartowski" / "Qwen2.5-7B-Instruct-GGUF" / "Q4_K_M"
    assert hf.served_id == HF_ID
    assert second.model_digest == first.model_digest
    assert [info.served_id for info in list_models(store)] == [HF_ID, "llama3.1:8b", "llama3.1:latest"]


@pytest.mark.parametrize("parts, served_id", [
    (("registry.ollama.ai", "library", "llama3", "latest"), "llama3:latest"),
    (("registry.ollama.ai", "jmorgan", "phi", "2b"), "jmorgan/phi:2b"),
    (("hf.co", "bartowski", "Qwen2.5-7B-Instruct-GGUF", "Q4_K_M"), HF_ID),
    (("localhost:5000", "me", "model", "v1"), "localhost:5000/me/model:v1"),
])
def test_served_id_round_trip(parts, served_id):
    assert served_id_of(*parts) == served_id
    assert parse_served_id(served_id) == parts


def test_parse_served_id_defaults_and_invalid_names():
    assert parse_served_id("llama3") == ("registry.ollama.ai", "library", "llama3", "latest")
    assert parse_served_id("jmorgan/phi") == ("registry.ollama.ai", "jmorgan", "phi", "latest")
    for bad in ("", "llama3:", "a/b/c/d", "/llama3", "hf.co//x:1"):
        with pytest.raises(ValueError):
            parse_served_id(bad)


def test_unreadable_manifests_are_skipped(store, server, client):
    write_model(store, "llama3.1", "8b")
    garbage = store / "manifests" / "registry.ollama.ai" / "library" / "broken" / "latest"
    garbage.parent.mkdir(parents=True)
    garbage.write_text("{not json")
    orphan = write_model(store, "orphan", "1b")
    blob_path(store, orphan.config_digest).unlink()

    assert [info.served_id for info in list_models(store)] == ["llama3.1:8b"]
    assert [m.model for m in client.list().models] == ["llama3.1:8b"]
    assert find_model(store, "broken") is None
    assert find_model(store, "not a:valid/name/at/all") is None


# --- the stand-in server, through the real client -------------------------------------------------------------


def test_list_shows_written_models(store, client):
    hf = write_model(store, "Qwen2.5-7B-Instruct-GGUF", "Q4_K_M", **HF)
    first = write_model(store, "llama3.1", "8b")
    second = write_model(store, "llama3.1", "latest", model_blob=first.model_digest)

    models = {m.model: m for m in client.list().models}

    assert set(models) == {HF_ID, "llama3.1:8b", "llama3.1:latest"}
    for info in (hf, first, second):
        listed = models[info.served_id]
        assert listed.digest == info.manifest_digest
        assert listed.size == info.size
        assert listed.modified_at.tzinfo is not None
        assert abs(listed.modified_at.timestamp() - info.manifest_path.stat().st_mtime) < 1e-3
        assert listed.details.format == "gguf"
        assert listed.details.family == info.family
        assert listed.details.families == [info.family]
        assert listed.details.parameter_size == info.model_type
        assert listed.details.quantization_level == info.file_type
    assert models[HF_ID].details.parameter_size == "7.6B"
    assert blob_files(store) == {digest.replace(":", "-") for info in (hf, first, second) for digest in info.digests}
    assert len({info.model_digest for info in (hf, first, second)}) == 2  # one GGUF blob for both llama3.1 tags


def test_tags_raw_json_shape(store, server):
    write_model(store, "llama3.1", "8b")
    listed = httpx.get(server.url + "/api/tags").json()["models"]
    assert set(listed[0]) == {"name", "model", "modified_at", "size", "digest", "details"}
    assert listed[0]["name"] == listed[0]["model"] == "llama3.1:8b"
    assert set(listed[0]["details"]) == {"parent_model", "format", "family", "families", "parameter_size",
                                         "quantization_level"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", listed[0]["modified_at"])


def test_show_reports_model_info_and_capabilities(store, client):
    info = write_model(store, "llama3.1", "8b", license="Llama 3.1 Community License",
                       params={"stop": ["<|eot_id|>", "<|eom_id|>"], "temperature": 0.6, "num_ctx": 8192.0})
    vision = write_model(store, "llava", "7b", projector=True, template="{{ .Tools }}{{ .Suffix }}{{ .Prompt }}",
                         model_type="7B")

    shown = client.show("llama3.1:8b")

    assert shown.modelinfo == {"general.architecture": "llama", "general.file_type": 15,
                               "llama.context_length": 4096, "general.parameter_count": 8_000_000_000}
    assert shown.capabilities == ["completion"]
    assert shown.template == "{{ .Prompt }}"
    assert shown.license == "Llama 3.1 Community License"
    assert shown.details.quantization_level == "Q4_K_M"
    assert shown.parameters.splitlines() == [
        'stop                           "<|eot_id|>"', 'stop                           "<|eom_id|>"',
        "temperature                    0.6", "num_ctx                        8192"]
    assert f"FROM {blob_path(store, info.model_digest)}" in shown.modelfile
    assert "PARAMETER stop <|eot_id|>\n" in shown.modelfile
    assert shown.modified_at.timestamp() == pytest.approx(info.manifest_path.stat().st_mtime, abs=1e-3)

    shown = client.show("LLaVA:7B")  # names match case-insensitively, as in Ollama
    assert shown.capabilities == ["completion", "tools", "insert", "vision"]
    assert shown.modelinfo["general.parameter_count"] == 7_000_000_000
    assert shown.license is None and shown.parameters is None
    assert f"FROM {blob_path(store, vision.projector_digest)}" in shown.modelfile


def test_show_model_info_comes_from_the_gguf(tmp_path, store, client):
    gguf_file = write_gguf_blob(tmp_path / "qwen.gguf", arch="qwen2", name="Qwen", chat_template="{{ x }}",
                                n_tensors=3)
    assert len(gguf.GGUFReader(gguf_file).tensors) == 3
    digest = put_blob_file(store, gguf_file)
    assert not gguf_file.exists() and blob_path(store, digest).is_file()
    write_model(store, "qwen", "7b", family="qwen2", model_type="7.6B", model_blob=digest)

    model_info = client.show("qwen:7b").modelinfo

    assert model_info["general.architecture"] == "qwen2"
    assert model_info["qwen2.context_length"] == 4096
    assert "general.name" not in model_info and "tokenizer.chat_template" not in model_info  # Ollama drops them


def test_show_raw_json_has_projector_info(store, server):
    write_model(store, "llava", "7b", projector=True)
    shown = httpx.post(server.url + "/api/show", json={"model": "llava:7b"}).json()
    assert shown["projector_info"]["general.architecture"] == "clip"
    assert "license" not in shown and "parameters" not in shown  # Go's omitempty


def test_generate_loads_and_unloads(store, server, client):
    write_model(store, "llama3.1", "8b")
    info = write_model(store, "Qwen2.5-7B-Instruct-GGUF", "Q4_K_M", **HF)

    loaded = client.generate(model="llama3.1:8b", keep_alive="5m")
    assert (loaded.model, loaded.done, loaded.done_reason, loaded.response) == ("llama3.1:8b", True, "load", "")
    assert client.generate(model=HF_ID, keep_alive=-1).done_reason == "load"

    running = client.ps().models
    assert [m.model for m in running] == [HF_ID, "llama3.1:8b"]  # the longest-lived first
    assert running[0].expires_at.year > 2300  # a negative keep_alive is forever
    assert running[1].name == "llama3.1:8b"
    expires = running[1].expires_at - datetime.now(UTC)
    assert timedelta(minutes=4) < expires <= timedelta(minutes=5)
    assert running[0].digest == info.manifest_digest
    assert running[0].size == running[0].size_vram == info.size
    assert running[0].context_length == 4096
    assert running[0].details.family == "qwen2"

    unloaded = client.generate(model="llama3.1:8b", keep_alive=0)
    assert (unloaded.done, unloaded.done_reason) == (True, "unload")
    assert [m.model for m in client.ps().models] == [HF_ID]
    assert server.requests[-2] == ("POST", "/api/generate", {"model": "llama3.1:8b", "stream": False,
                                                              "keep_alive": 0})


def test_answered_lists_a_call_only_once_its_effect_is_in_place(store, server, client):
    write_model(store, "llama3.1", "8b")
    server.delay = 0.3  # the answer is held back; the call is already in ``requests``
    loading = threading.Thread(target=client.generate, kwargs={"model": "llama3.1:8b", "keep_alive": "2m"})
    loading.start()
    deadline = time.monotonic() + 5
    while not any(path == "/api/generate" for _, path, _ in server.requests) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert ("POST", "/api/generate") not in server.answered
    loading.join()
    assert server.answered[-1] == ("POST", "/api/generate")
    assert timedelta(minutes=1) < server.loaded["llama3.1:8b"] - datetime.now(UTC) <= timedelta(minutes=2)


def test_generate_default_and_short_keep_alive(store, server, client):
    write_model(store, "llama3.1", "8b")
    with pytest.raises(ollama.ResponseError):  # no tag means "latest": not in the store
        client.generate(model="llama3.1")
    client.generate(model="llama3.1:8b")  # keep_alive absent: Ollama's 5 minutes
    assert server.loaded["llama3.1:8b"] - datetime.now(UTC) > timedelta(minutes=4)
    client.generate(model="llama3.1:8b", keep_alive="1ms")
    time.sleep(0.01)
    assert client.ps().models == []


@pytest.mark.parametrize("value, seconds", [
    (None, 300), (0, 0), ("0", 0), (30, 30), (1.5, 1.5), ("5m", 300), ("1h30m", 5400), ("1.5s", 1.5),
    ("250ms", 0.25), (-1, None), ("-1m", None),
])
def test_parse_keep_alive(value, seconds):
    expected = timedelta(seconds=(2**63 - 1) / 1e9) if seconds is None else timedelta(seconds=seconds)
    assert parse_keep_alive(value) == expected


@pytest.mark.parametrize("value, error", [
    ("abc", 'time: invalid duration "abc"'), ("-1", 'time: invalid duration "-1"'),  # Go wants a unit
    ("5x", 'time: invalid duration "5x"'), ("", 'time: invalid duration ""'),
    ([5], "unsupported duration type: list"), (True, "unsupported duration type: bool"),
])
def test_generate_rejects_bad_keep_alive(store, server, value, error):
    write_model(store, "llama3.1", "8b")
    answer = httpx.post(server.url + "/api/generate", json={"model": "llama3.1:8b", "keep_alive": value})
    assert (answer.status_code, answer.json()) == (400, {"error": error})


def test_generate_with_a_prompt_is_not_supported(store, client):
    write_model(store, "llama3.1", "8b")
    with pytest.raises(ollama.ResponseError) as raised:
        client.generate(model="llama3.1:8b", prompt="hi")
    assert raised.value.status_code == 501


def test_pull_streams_progress_and_writes_the_model(store, server, client):
    progress = list(client.pull("smollm2:135m", stream=True))

    statuses = [p.status for p in progress]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    info = find_model(store, "smollm2:135m")
    pulled = [p for p in progress if p.status.startswith("pulling ") and p.digest]
    assert [p.digest for p in pulled] == info.digests
    assert all(p.status == f"pulling {p.digest[7:19]}" and p.total == p.completed > 0 for p in pulled)
    assert (store / "manifests" / "registry.ollama.ai" / "library" / "smollm2" / "135m").is_file()
    assert [m.model for m in client.list().models] == ["smollm2:135m"]
    assert client.show("smollm2:135m").details.quantization_level == "Q8_0"
    assert server.requests[0] == ("POST", "/api/pull", {"model": "smollm2:135m", "insecure": False,
                                                         "stream": True})


def test_pull_without_stream_and_unknown_models(store, server, client):
    assert client.pull("smollm2:135m").status == "success"
    assert find_model(store, "smollm2:135m") is not None

    with pytest.raises(ollama.ResponseError) as raised:
        client.pull("nope")
    assert (raised.value.error, raised.value.status_code) == ("pull model manifest: file does not exist", 500)

    progress = client.pull("nope", stream=True)  # the error arrives in the stream, after the first line
    assert next(progress).status == "pulling manifest"
    with pytest.raises(ollama.ResponseError, match="pull model manifest: file does not exist"):
        next(progress)

    with pytest.raises(ollama.ResponseError) as raised:
        client.pull("not/a/valid/name")
    assert (raised.value.error, raised.value.status_code) == ("invalid model name", 400)


def test_delete_keeps_blobs_other_tags_use(store, server, client):
    first = write_model(store, "llama3.1", "8b", license="MIT")
    second = write_model(store, "llama3.1", "latest", model_blob=first.model_digest)
    write_model(store, "Qwen2.5-7B-Instruct-GGUF", "Q4_K_M", **HF)
    client.generate(model="llama3.1:8b")

    assert client.delete("llama3.1:8b").status == "success"

    assert not first.manifest_path.exists() and second.manifest_path.exists()
    assert blob_path(store, first.model_digest).exists()  # still used by llama3.1:latest
    assert blob_path(store, first.layers[1]["digest"]).exists()  # the template, the same bytes in every tag
    license_layer = first.layers[2]
    assert license_layer["mediaType"] == "application/vnd.ollama.image.license"
    assert not blob_path(store, license_layer["digest"]).exists()
    assert not blob_path(store, first.config_digest).exists()  # its own config (it names the license)
    assert sorted(m.model for m in client.list().models) == [HF_ID, "llama3.1:latest"]
    assert client.ps().models == []  # deleting unloads, as `ollama rm` does

    client.delete("llama3.1:latest")
    client.delete(HF_ID)
    assert blob_files(store) == set()
    assert not (store / "manifests").exists()  # Ollama prunes the emptied folders


def test_delete_answers_an_empty_body(store, server):
    write_model(store, "llama3.1", "8b")
    answer = httpx.request("DELETE", server.url + "/api/delete", json={"model": "llama3.1:8b"})
    assert (answer.status_code, answer.content) == (200, b"")


@pytest.mark.parametrize("call, message", [
    (lambda c: c.show("nope"), "model 'nope' not found"),
    (lambda c: c.generate(model="nope"), "model 'nope' not found"),
    (lambda c: c.delete("nope:7b"), "model 'nope:7b' not found"),
])
def test_unknown_models_are_404(client, call, message):
    with pytest.raises(ollama.ResponseError) as raised:
        call(client)
    assert (raised.value.error, raised.value.status_code) == (message, 404)


@pytest.mark.parametrize("call", [lambda c: c.show("llama3.1:8b"), lambda c: c.generate(model="llama3.1:8b")])
def test_delay_makes_clients_time_out(store, server, call):
    write_model(store, "llama3.1", "8b")
    server.delay = 5  # cut short when the server stops
    with ollama.Client(host=server.url, timeout=0.2) as impatient, pytest.raises(httpx.TimeoutException):
        call(impatient)


def test_status_override_fails_every_api_call(store, server, client):
    write_model(store, "llama3.1", "8b")
    server.status_override = 503
    for call in (client.list, client.ps, lambda: client.show("llama3.1:8b"), lambda: client.pull("smollm2:135m"),
                 lambda: list(client.pull("smollm2:135m", stream=True))):
        with pytest.raises(ollama.ResponseError) as raised:
            call()
        assert raised.value.status_code == 503
    assert httpx.get(server.url + "/").status_code == 200  # not an /api/ call
    server.status_override = None
    assert [m.model for m in client.list().models] == ["llama3.1:8b"]


def test_stopped_server_refuses_connections(store, server, client):
    assert client.list().models == []  # leaves a pooled keep-alive connection
    server.stop()
    with pytest.raises(ConnectionError):
        client.list()
    server.start()  # the fixture stops it again


def test_plain_http_answers(server):
    url = server.url
    assert server.host == url.removeprefix("http://")
    assert (httpx.get(url + "/").text, httpx.head(url + "/").content) == ("Ollama is running", b"")
    assert httpx.get(url + "/api/version").json() == {"version": "0.12.6"}
    assert httpx.get(url + "/api/nothing").status_code == 404
    assert httpx.get(url + "/api/show").status_code == 405
    assert httpx.post(url + "/api/show").json() == {"error": "missing request body"}
    assert httpx.post(url + "/api/show", json=[1]).json() == {"error": "invalid request body"}
    bad = httpx.post(url + "/api/show", content=b"{oops")
    assert bad.status_code == 400 and bad.json()["error"].startswith("invalid JSON body")
    assert server.requests == [
        ("GET", "/", None), ("HEAD", "/", None), ("GET", "/api/version", None), ("GET", "/api/nothing", None),
        ("GET", "/api/show", None), ("POST", "/api/show", None), ("POST", "/api/show", [1]),
        ("POST", "/api/show", "{oops")]
