"""The corpus: find, download, verify and load Tiny Shakespeare (or any text), split it, batch it.

Follows the data section of the Zero-to-Hero GPT lecture (and nanoGPT's shakespeare_char prep):
one contiguous 90/10 split and random (x, y) windows shifted by one character.
Shapes: B batch, T time (block_size).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from .utils import sha256_file

SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SHAKESPEARE_SIZE = 1_115_394  # bytes (and characters: the file is ASCII)
SHAKESPEARE_FILENAME = "tinyshakespeare.txt"
DATA_ENV = "SHAKESPEARE_LM_DATA"  # path to a copy of input.txt
DATA_DIR_ENV = "SHAKESPEARE_LM_DATA_DIR"  # where downloads are cached

_HOW_TO_SUPPLY = (
    "To use a copy you already have, set SHAKESPEARE_LM_DATA=/path/to/input.txt "
    "or call load_shakespeare(path='/path/to/input.txt'). "
    f"The file is published at {SHAKESPEARE_URL}"
)


class DownloadError(RuntimeError):
    """The corpus could not be downloaded or did not match its published digest."""


class CorpusMismatchError(ValueError):
    """A file given as Tiny Shakespeare is not the published file (a truncated or edited copy)."""


def data_dir() -> Path:
    """Directory where the corpus is cached.

    `$SHAKESPEARE_LM_DATA_DIR` if set; else the repository's `data/` when the package runs from
    a checkout (whatever the working directory); else `~/.cache/shakespeare_lm` (installed package).
    """
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    repo_data = Path(__file__).resolve().parent.parent / "data"
    if (repo_data / "README.md").is_file():
        return repo_data
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "shakespeare_lm"


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    timeout: float = 30.0,
    retries: int = 1,
    progress: bool = True,
) -> Path:
    """Download `url` to `dest` atomically, retrying `retries` times and checking `sha256`.

    On any failure nothing is left at `dest` (nor a temporary file) and DownloadError says why.
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(min(2.0**attempt, 10.0) * 0.5)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(
                    total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}",
                    disable=not progress, leave=False,
                ) as bar:
                    while chunk := resp.read(1 << 16):
                        out.write(chunk)
                        h.update(chunk)
                        bar.update(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            if sha256 is not None and h.hexdigest() != sha256.lower():
                # A wrong file is not retried: the server is answering, with different bytes.
                raise DownloadError(
                    f"downloaded {url} but its sha256 is {h.hexdigest()}, expected {sha256}; "
                    "the file was discarded. " + _HOW_TO_SUPPLY
                )
            os.replace(tmp, dest)
            return dest
        except DownloadError:
            raise
        except urllib.error.HTTPError as e:
            errors.append(f"HTTP {e.code} {e.reason}")
            if 400 <= e.code < 500 and e.code not in (408, 429):
                break  # retrying a 404 will not help
        except TimeoutError:
            errors.append(f"timed out after {timeout:g} s")
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                errors.append(f"timed out after {timeout:g} s")
            else:
                errors.append(f"cannot reach the server ({reason})")
        except OSError as e:
            errors.append(f"{type(e).__name__}: {e}")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    raise DownloadError(
        f"could not download {url} after {len(errors)} attempt(s): {'; '.join(errors)}. "
        + _HOW_TO_SUPPLY
    )


def load_text(path: str | os.PathLike) -> str:
    """Load any UTF-8 text file as a corpus ("train on your own text")."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"corpus file not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"corpus path is a directory, not a text file: {path}")
    raw = path.read_bytes()
    if not raw:
        raise ValueError(f"corpus file is empty: {path}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"corpus file is not UTF-8 text: {path} (byte {e.start} is {raw[e.start]:#04x}); "
            "convert it first, e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt`"
        ) from None
    return text.removeprefix("\ufeff")  # a UTF-8 byte-order mark is not part of the text


def _load_verified(path: str | os.PathLike, sha256: str, size: int | None) -> str:
    """load_text(path), refusing a file whose sha256 is not `sha256` (the copy is not the corpus)."""
    text = load_text(path)  # clear errors for a missing, empty or non-UTF-8 file
    path = Path(path).expanduser()
    actual = sha256_file(path)
    if actual != sha256.lower():
        n = path.stat().st_size
        hint = ""
        if size is not None and n != size:
            hint = " (truncated copy?)" if n < size else " (modified or appended?)"
        expected_size = f", {size:,} bytes" if size is not None else ""
        raise CorpusMismatchError(
            f"{path} is not Tiny Shakespeare: sha256 {actual}, {n:,} bytes{hint}; expected sha256 "
            f"{sha256}{expected_size}. To train on a modified text use load_text(path) (CLI: --data PATH)"
        )
    return text


def load_shakespeare(
    path: str | os.PathLike | None = None,
    *,
    url: str = SHAKESPEARE_URL,
    sha256: str = SHAKESPEARE_SHA256,
    size: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    timeout: float = 30.0,
    retries: int = 1,
    progress: bool = True,
) -> str:
    """Return the Tiny Shakespeare text.

    Looks, in order, at: `path`; `$SHAKESPEARE_LM_DATA`; a cached copy in `cache_dir`
    (default `data_dir()`); else downloads it from `url`, checks its sha256 and caches it.
    A copy given by `path` or `$SHAKESPEARE_LM_DATA` must match `sha256` too, else
    CorpusMismatchError (a ValueError) says how it differs: train on an edited or other text with
    `load_text(path)` instead. `size` (bytes; known for the default digest) lets that error say
    whether the copy looks truncated or appended to.
    """
    if size is None and sha256.lower() == SHAKESPEARE_SHA256:
        size = SHAKESPEARE_SIZE
    if path is not None:
        return _load_verified(path, sha256, size)
    env = os.environ.get(DATA_ENV)
    if env:
        return _load_verified(env, sha256, size)
    cached = Path(cache_dir).expanduser() if cache_dir is not None else data_dir()
    cached = cached / SHAKESPEARE_FILENAME
    if cached.is_file():
        if sha256_file(cached) == sha256.lower():
            return load_text(cached)
        warnings.warn(f"cached corpus {cached} does not match its sha256; downloading it again",
                      stacklevel=2)
    download(url, cached, sha256=sha256, timeout=timeout, retries=retries, progress=progress)
    return load_text(cached)


def train_val_split(data, val_fraction: float = 0.1):
    """Split a sequence (text, list or tensor) into contiguous train and val parts, 90/10 by default."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    n = int((1.0 - val_fraction) * len(data))
    if n == 0 or n == len(data):
        raise ValueError(f"a corpus of {len(data)} items is too short to split")
    return data[:n], data[n:]


def _check_windows(data: torch.Tensor, block_size: int) -> None:
    if not isinstance(data, torch.Tensor) or data.dim() != 1:
        raise TypeError("data must be a 1-D tensor of token ids, e.g. torch.tensor(tok.encode(text))")
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    if len(data) <= block_size:
        raise ValueError(
            f"data has {len(data)} tokens, too few for block_size={block_size} "
            "(need at least block_size + 1)"
        )


def get_batch(
    data: torch.Tensor,
    batch_size: int,
    block_size: int,
    *,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random training windows: x is (B, T) tokens, y is x shifted left by one (the targets)."""
    _check_windows(data, block_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)  # (B,)
    offsets = torch.arange(block_size + 1)  # (T+1,)
    window = data[ix[:, None] + offsets]  # (B, T+1)
    x, y = window[:, :-1], window[:, 1:]  # (B, T), (B, T)
    device = torch.device(device)
    if device.type == "cuda":
        # pinned memory lets the copy overlap with compute
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.contiguous().to(device), y.contiguous().to(device)


def iter_eval_batches(
    data: torch.Tensor,
    batch_size: int,
    block_size: int,
    *,
    every: int = 1,
    device: str | torch.device = "cpu",
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Ordered, non-overlapping windows covering the whole split once, for exact evaluation.

    Every token but the first is a target exactly once. Full windows come in batches of
    (B, T); the remainder comes last as a single (1, T') window with T' < T. With every=N > 1 only
    every Nth full window comes (a systematic sample spread over the split, no remainder).
    """
    _check_windows(data, 1)
    if batch_size < 1 or block_size < 1 or every < 1:
        raise ValueError("batch_size, block_size and every must be positive")
    n_full = (len(data) - 1) // block_size
    starts = torch.arange(0, n_full, every) * block_size
    offsets = torch.arange(block_size + 1)
    for i in range(0, len(starts), batch_size):
        window = data[starts[i : i + batch_size, None] + offsets]  # (B, T+1)
        yield window[:, :-1].to(device), window[:, 1:].to(device)
    tail = data[n_full * block_size :]
    if every == 1 and len(tail) > 1:
        yield tail[None, :-1].to(device), tail[None, 1:].to(device)
