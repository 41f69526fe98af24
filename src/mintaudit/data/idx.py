"""IDX files (MNIST, Fashion-MNIST, KMNIST), gzipped or not, streamed so a lying header allocates nothing."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mintaudit.data.pool import GZIP_MAGIC, PathLike
from mintaudit.errors import CorruptFileError, DataNotFoundError

__all__ = ["read_idx"]

_IDX_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
# An IDX file may declare at most this many data bytes (Fashion-MNIST train images: 47 MB).
_IDX_MAX_BYTES = 2**34
_READ_CHUNK = 1 << 20


def _open_maybe_gzip(path: Path) -> BinaryIO:
    """Open a file for streaming reads, gunzipping on the fly when it starts with 1f 8b."""
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no such file; check the path")
    with path.open("rb") as f:
        zipped = f.read(2) == GZIP_MAGIC
    return gzip.open(path, "rb") if zipped else path.open("rb")  # type: ignore[return-value]


def _read_idx_stream(f: BinaryIO, path: Path) -> np.ndarray:
    """Parse an IDX stream: the header first, then exactly the declared number of bytes."""
    magic = f.read(4)
    if len(magic) < 4 or magic[:2] != b"\x00\x00" or magic[2] not in _IDX_DTYPES or magic[3] == 0:
        raise CorruptFileError(
            f"{path}: not an IDX file: magic bytes {magic.hex(' ') or '(empty)'}, expected "
            f"00 00 <type in {', '.join(f'{c:02x}' for c in _IDX_DTYPES)}> <ndim >= 1>; "
            "point at an MNIST-style *-ubyte[.gz] file"
        )
    dtype, ndim = np.dtype(_IDX_DTYPES[magic[2]]), magic[3]
    header = 4 + 4 * ndim
    raw_dims = f.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise CorruptFileError(
            f"{path}: truncated IDX header: expected {header} bytes, got {4 + len(raw_dims)}; download it again"
        )
    dims = struct.unpack(f">{ndim}I", raw_dims)
    n_bytes = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
    if n_bytes > _IDX_MAX_BYTES:
        raise CorruptFileError(
            f"{path}: IDX header declares shape {dims} of {dtype.name} ({n_bytes} bytes), more than the "
            f"{_IDX_MAX_BYTES >> 30} GiB a data file may hold; the header is damaged or it is not an IDX file, "
            "download it again"
        )
    expected = header + n_bytes
    buffer = bytearray()  # grows with what is really there: a lying header allocates nothing
    while len(buffer) < n_bytes:
        chunk = f.read(min(_READ_CHUNK, n_bytes - len(buffer)))
        if not chunk:
            raise CorruptFileError(
                f"{path}: IDX header says shape {dims} ({expected} bytes) but the file holds "
                f"{header + len(buffer)} bytes; the file is truncated, download it again"
            )
        buffer += chunk
    if f.read(1):
        raise CorruptFileError(
            f"{path}: IDX header says shape {dims} ({expected} bytes) but the file holds more than "
            f"{expected} bytes; the header or the data are damaged, download the file again"
        )
    data = np.frombuffer(buffer, dtype=dtype).reshape(dims)
    return data if dtype.isnative else data.astype(dtype.newbyteorder("="))


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (MNIST, Fashion-MNIST, KMNIST), gzipped or not.

    Gzip is detected by its magic bytes, not by the file name. The header is
    ``00 00 <dtype code> <ndim>`` then ``ndim`` big-endian uint32 dimensions. The file is
    streamed: the header is checked first and at most the declared number of bytes is read,
    so a gzip bomb is refused without being decompressed.

    Args:
        path: ``*-idx3-ubyte[.gz]`` (images) or ``*-idx1-ubyte[.gz]`` (labels).

    Returns:
        The array with the file's shape and native-endian dtype, e.g. uint8 (N, 28, 28)
        for images and uint8 (N,) for labels.

    Raises:
        CorruptFileError: wrong magic, unknown dtype code, a declared size above 16 GiB, fewer
            bytes than the header declares (truncated) or more (trailing data), a damaged gzip.

    Example:
        >>> images = read_idx("train-images-idx3-ubyte.gz")  # doctest: +SKIP
    """
    path = Path(path)
    stream = _open_maybe_gzip(path)
    try:
        with stream as f:
            return _read_idx_stream(f, path)
    except EOFError as exc:
        raise CorruptFileError(f"{path}: the gzip stream is truncated ({exc}); download the file again") from None
    except (OSError, zlib.error) as exc:
        raise CorruptFileError(f"{path}: damaged gzip stream ({exc}); download the file again") from None
