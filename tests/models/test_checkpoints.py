"""Checkpoint download against a loopback HTTP server: resume, hash check, SAM2 structure check."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest
import torch

from vigil360.cli import main as cli_main
from vigil360.errors import MissingModelError, UserError
from vigil360.models import checkpoints
from vigil360.models.manifest import sha256_file


def _fake_sam2_checkpoint(path: Path) -> bytes:
    """A small file in SAM2's checkpoint format (a 'model' dict with the modules a SAM2 has)."""
    state = {
        "image_encoder.trunk.patch_embed.proj.weight": torch.arange(4096, dtype=torch.float32),
        "memory_attention.layers.0.linear1.weight": torch.ones(64, 8),
    }
    torch.save({"model": state}, path)
    return path.read_bytes()


class _Server:
    """Serves `files` (name -> bytes) with Range support; `honour_range=False` mimics servers without it."""

    def __init__(self, files: dict[str, bytes], honour_range: bool = True) -> None:
        self.files, self.honour_range, self.ranges = files, honour_range, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                body = outer.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                header = self.headers.get("Range")
                outer.ranges.append(header)
                start = int(header.split("=")[1].split("-")[0]) if header and outer.honour_range else 0
                if start >= len(body) and header:
                    self.send_response(416)
                    self.end_headers()
                    return
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])

            def log_message(self, *args) -> None:
                return

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def payload(tmp_path: Path) -> bytes:
    return _fake_sam2_checkpoint(tmp_path / "source.pt")


def test_pull_downloads_and_verifies_hash(tmp_path: Path, payload: bytes) -> None:
    digest = checkpoints.hash_digest(payload)
    with _Server({"ckpt.pt": payload}) as server:
        path = checkpoints.pull(
            "sam2.1_hiera_tiny", tmp_path / "cache", sha256=digest, url=server.url("ckpt.pt")
        )
    assert path.read_bytes() == payload and sha256_file(path) == digest
    assert checkpoints.cached_checkpoint("sam2.1_hiera_tiny", tmp_path / "cache") == path


def test_download_resumes_a_partial_file(tmp_path: Path, payload: bytes) -> None:
    target = tmp_path / "cache" / "x.pt"
    target.parent.mkdir()
    (target.parent / "x.pt.part").write_bytes(payload[:1000])
    with _Server({"x.pt": payload}) as server:
        checkpoints.download(server.url("x.pt"), target)
    assert server.ranges == ["bytes=1000-"]
    assert target.read_bytes() == payload and not (target.parent / "x.pt.part").exists()


def test_download_restarts_when_server_ignores_range(tmp_path: Path, payload: bytes) -> None:
    target = tmp_path / "y.pt"
    (tmp_path / "y.pt.part").write_bytes(b"garbage that must not survive")
    with _Server({"y.pt": payload}, honour_range=False) as server:
        checkpoints.download(server.url("y.pt"), target)
    assert target.read_bytes() == payload


def test_hash_mismatch_is_an_error_and_the_file_is_set_aside(tmp_path: Path, payload: bytes) -> None:
    with _Server({"ckpt.pt": payload}) as server, pytest.raises(UserError, match="does not match"):
        checkpoints.pull("sam2.1_hiera_tiny", tmp_path, sha256="0" * 64, url=server.url("ckpt.pt"))
    assert not (tmp_path / "sam2.1_hiera_tiny.pt").exists()
    assert (tmp_path / "sam2.1_hiera_tiny.pt.rejected").exists()


def test_a_file_that_is_not_sam2_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2)}}, other)
    with _Server({"other.pt": other.read_bytes()}) as server, pytest.raises(UserError, match="not a SAM2"):
        checkpoints.pull("sam2.1_hiera_tiny", tmp_path / "cache", url=server.url("other.pt"))


def test_http_errors_and_unknown_names_are_clear(tmp_path: Path) -> None:
    with _Server({}) as server, pytest.raises(UserError, match="HTTP 404"):
        checkpoints.download(server.url("missing.pt"), tmp_path / "m.pt")
    with pytest.raises(UserError, match="unknown checkpoint"):
        checkpoints.pull("sam9_hiera_huge", tmp_path)
    with pytest.raises(MissingModelError, match="models pull sam2.1_hiera_small"):
        checkpoints.cached_checkpoint("sam2.1_hiera_small", tmp_path)


def test_official_table_points_at_meta_urls_and_claims_no_unknown_hash() -> None:
    spec = checkpoints.CHECKPOINTS["sam2.1_hiera_tiny"]
    assert spec.url == "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt"
    assert all(s.sha256 is None or len(s.sha256) == 64 for s in checkpoints.CHECKPOINTS.values())


def test_cli_pull(tmp_path: Path, payload: bytes, capsys) -> None:
    with _Server({"c.pt": payload}) as server, pytest.raises(SystemExit) as exit_:
        cli_main(
            [
                "models",
                "pull",
                "sam2.1_hiera_tiny",
                "--cache-dir",
                str(tmp_path),
                "--url",
                server.url("c.pt"),
                "--sha256",
                checkpoints.hash_digest(payload),
            ]
        )
    assert exit_.value.code in (0, None)
    assert "verified against the expected hash" in capsys.readouterr().out
