"""Corpus download against a local HTTP server on 127.0.0.1: success, bad digest, 404, timeout."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
import time
from pathlib import Path

import pytest

from shakespeare_lm import data as data_mod
from shakespeare_lm.data import CorpusMismatchError, DownloadError, download, load_shakespeare

_RELEASE = threading.Event()  # the slow endpoint hangs until the module's server shuts down
BODY = ("ROMEO:\nBut, soft! what light through yonder window breaks?\n" * 50).encode()
DIGEST = hashlib.sha256(BODY).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: dict[str, int] = {}

    def do_GET(self):  # noqa: N802 (http.server's naming)
        _Handler.hits[self.path] = _Handler.hits.get(self.path, 0) + 1
        if self.path == "/input.txt":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)
        elif self.path == "/flaky.txt" and _Handler.hits[self.path] == 1:
            self.send_response(503)
            self.end_headers()
        elif self.path == "/flaky.txt":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(BODY)
        elif self.path == "/slow.txt":
            _RELEASE.wait(5)  # never answers within the client's timeout
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    _RELEASE.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("SHAKESPEARE_LM_DATA", raising=False)
    monkeypatch.delenv("SHAKESPEARE_LM_DATA_DIR", raising=False)


def test_download_success_writes_verified_file(server, tmp_path):
    dest = download(f"{server}/input.txt", tmp_path / "c.txt", sha256=DIGEST, progress=False)
    assert dest.read_bytes() == BODY
    assert sorted(os.listdir(tmp_path)) == ["c.txt"]  # no temp files left behind


def test_load_shakespeare_downloads_then_uses_cache(server, tmp_path, no_env):
    url = f"{server}/input.txt"
    before = _Handler.hits.get("/input.txt", 0)
    text = load_shakespeare(url=url, sha256=DIGEST, cache_dir=tmp_path, progress=False)
    assert text == BODY.decode()
    assert (tmp_path / data_mod.SHAKESPEARE_FILENAME).is_file()
    again = load_shakespeare(url=url, sha256=DIGEST, cache_dir=tmp_path, progress=False)
    assert again == text
    assert _Handler.hits["/input.txt"] == before + 1  # the second call read the cache


def test_digest_mismatch_raises_and_caches_nothing(server, tmp_path, no_env):
    with pytest.raises(DownloadError, match="sha256") as exc:
        load_shakespeare(url=f"{server}/input.txt", sha256="0" * 64, cache_dir=tmp_path, progress=False)
    assert "SHAKESPEARE_LM_DATA" in str(exc.value)  # says how to supply the file by hand
    assert os.listdir(tmp_path) == []


def test_http_404_raises_without_retrying(server, tmp_path):
    before = _Handler.hits.get("/missing.txt", 0)
    with pytest.raises(DownloadError, match="HTTP 404") as exc:
        download(f"{server}/missing.txt", tmp_path / "c.txt", retries=3, progress=False)
    assert "path=" in str(exc.value)
    assert _Handler.hits["/missing.txt"] == before + 1
    assert os.listdir(tmp_path) == []


def test_server_error_is_retried(server, tmp_path, monkeypatch):
    monkeypatch.setattr(data_mod.time, "sleep", lambda s: None)
    dest = download(f"{server}/flaky.txt", tmp_path / "c.txt", sha256=DIGEST, retries=1, progress=False)
    assert dest.read_bytes() == BODY
    assert _Handler.hits["/flaky.txt"] == 2


def test_timeout_raises_and_leaves_nothing(server, tmp_path, monkeypatch):
    monkeypatch.setattr(data_mod.time, "sleep", lambda s: None)
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match="timed out"):
        download(f"{server}/slow.txt", tmp_path / "c.txt", timeout=0.3, retries=1, progress=False)
    assert time.monotonic() - t0 < 3  # gave up on its own, did not hang
    assert os.listdir(tmp_path) == []


def test_unreachable_host_names_the_problem(tmp_path):
    # port 9 on loopback (discard) is closed on test machines: connection refused at once
    with pytest.raises(DownloadError, match="cannot reach"):
        download("http://127.0.0.1:9/input.txt", tmp_path / "c.txt", retries=0, progress=False)
    assert os.listdir(tmp_path) == []


def test_corrupt_cache_is_replaced(server, tmp_path, no_env):
    cached = tmp_path / data_mod.SHAKESPEARE_FILENAME
    cached.write_text("garbage")
    with pytest.warns(UserWarning, match="sha256"):
        text = load_shakespeare(url=f"{server}/input.txt", sha256=DIGEST, cache_dir=tmp_path, progress=False)
    assert text == BODY.decode()
    assert cached.read_bytes() == BODY


def test_resolution_order_path_then_env_then_cache(tmp_path, monkeypatch):
    """Each source is verified against the digest, so a wrong file shows which source was read."""
    good, bad, cache = tmp_path / "good.txt", tmp_path / "bad.txt", tmp_path / "cache"
    good.write_bytes(BODY)
    bad.write_text("not the corpus")
    cache.mkdir()
    (cache / data_mod.SHAKESPEARE_FILENAME).write_bytes(BODY)
    never = dict(url="http://127.0.0.1:9/never-used", sha256=DIGEST, cache_dir=cache)
    monkeypatch.setenv("SHAKESPEARE_LM_DATA", str(bad))
    assert load_shakespeare(good, **never) == BODY.decode()  # path first: the bad env copy is not read
    with pytest.raises(CorpusMismatchError, match="bad.txt"):
        load_shakespeare(**never)  # then the environment, before the good cached copy
    monkeypatch.setenv("SHAKESPEARE_LM_DATA", str(good))
    with pytest.raises(CorpusMismatchError, match="bad.txt"):
        load_shakespeare(bad, **never)
    monkeypatch.delenv("SHAKESPEARE_LM_DATA")
    assert load_shakespeare(**never) == BODY.decode()  # then the cache, without a download


def test_data_dir_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("SHAKESPEARE_LM_DATA_DIR", str(tmp_path))
    assert data_mod.data_dir() == tmp_path


def test_data_dir_is_the_repo_data_folder_in_a_checkout(monkeypatch):
    monkeypatch.delenv("SHAKESPEARE_LM_DATA_DIR", raising=False)
    assert data_mod.data_dir() == Path(__file__).resolve().parent.parent / "data"


@pytest.mark.slow  # a subprocess that imports torch: several seconds
def test_installed_package_caches_under_home(tmp_path):
    """Outside a checkout (an installed package) the cache is ~/.cache/shakespeare_lm, whatever the cwd."""
    import shutil
    import subprocess
    import sys

    site = tmp_path / "site"
    shutil.copytree(Path(data_mod.__file__).parent, site / "shakespeare_lm",
                    ignore=shutil.ignore_patterns("__pycache__"))
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHAKESPEARE_LM_", "XDG_"))}
    env.update(PYTHONPATH=str(site), HOME=str(home))
    out = subprocess.run(
        [sys.executable, "-c", "import shakespeare_lm.data as d; print(d.data_dir())"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    )
    assert Path(out.stdout.strip()) == home / ".cache" / "shakespeare_lm"
