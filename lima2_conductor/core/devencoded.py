"""Lima2 DevEncoded payloads: ``DATA_ARRAY`` frames and ``STRUCTURED_ARRAY`` rows.

Both share a 64-byte little-endian header (struct ``<IHHIIHHHHHHHHIIIIIIQ``):
magic ``b"DTAY"`` (read big-endian), version 1, header size, category, data type,
endianness (0 = little), nb_dim, dim1..dim6, dim_step1..dim_step6, frame_idx.
An image is category 2 with nb_dim 3, dim1 = width, dim2 = height, dim3 = channels,
payload C-ordered ``(channels, height, width)``. A vector (FAI) is category 1 with
nb_dim 1, dim1 = length.

Sparse frames have their own little-endian layouts, without magic:

- ``SPARSE_FRAME``: header ``<HHII`` (width, height, N, frame_idx), then N int32 flat
  pixel indices (``y * width + x``) and N uint16 intensities;
- ``SMX_SPARSE_FRAME``: header ``<HHIII`` (width, height, B bins, P peaks, frame_idx),
  then P int32 indices, P float32 intensities, B float32 background averages and B
  float32 background standard deviations (per radial bin).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from .lima2 import DATA_ARRAY, SMX_SPARSE_FRAME, SPARSE_FRAME, STRUCTURED_ARRAY

HEADER_FORMAT = "<IHHIIHHHHHHHHIIIIIIQ"
HEADER_SIZE = struct.calcsize(HEADER_FORMAT)
MAGIC = struct.unpack(">I", b"DTAY")[0]
VERSION = 1


class Category(IntEnum):
    SCALAR_STACK = 0
    SPECTRUM = 1
    IMAGE = 2
    SPECTRUM_STACK = 3
    IMAGE_STACK = 4


class DataType(IntEnum):
    UINT8 = 0
    UINT16 = 1
    UINT32 = 2
    UINT64 = 3
    INT8 = 4
    INT16 = 5
    INT32 = 6
    INT64 = 7
    FLOAT32 = 8
    FLOAT64 = 9


_NUMPY_OF: dict[DataType, np.dtype] = {
    DataType.UINT8: np.dtype(np.uint8),
    DataType.UINT16: np.dtype(np.uint16),
    DataType.UINT32: np.dtype(np.uint32),
    DataType.UINT64: np.dtype(np.uint64),
    DataType.INT8: np.dtype(np.int8),
    DataType.INT16: np.dtype(np.int16),
    DataType.INT32: np.dtype(np.int32),
    DataType.INT64: np.dtype(np.int64),
    DataType.FLOAT32: np.dtype(np.float32),
    DataType.FLOAT64: np.dtype(np.float64),
}
_TYPE_OF = {v: k for k, v in _NUMPY_OF.items()}


class DecodeError(ValueError):
    """A payload that is not a valid Lima2 DevEncoded buffer."""


@dataclass(frozen=True)
class Header:
    category: int
    data_type: int
    nb_dim: int
    dims: tuple[int, ...]
    frame_idx: int
    header_size: int = HEADER_SIZE


def _pack_header(category: Category, dtype: np.dtype, dims: tuple[int, ...], frame_idx: int) -> bytes:
    dims6 = (list(dims) + [1] * 6)[:6]
    steps = [0] * 6
    data_type = _TYPE_OF.get(np.dtype(dtype).newbyteorder("="), DataType.UINT8)
    return struct.pack(
        HEADER_FORMAT,
        MAGIC,
        VERSION,
        HEADER_SIZE,
        int(category),
        int(data_type),
        0,
        len(dims),
        *dims6,
        *steps,
        max(0, int(frame_idx)),
    )


def parse_header(raw: bytes) -> Header:
    """Parse and check the common header."""
    if len(raw) < HEADER_SIZE:
        raise DecodeError(f"payload of {len(raw)} bytes is shorter than the {HEADER_SIZE}-byte header")
    fields = struct.unpack_from(HEADER_FORMAT, raw)
    magic, version, header_size, category, data_type, endianness, nb_dim = fields[:7]
    if magic != MAGIC:
        raise DecodeError(f"bad magic 0x{magic:x}")
    if version < 1:
        raise DecodeError(f"unsupported header version {version}")
    if header_size < HEADER_SIZE or header_size > len(raw):
        raise DecodeError(f"bad header size {header_size}")
    if endianness != 0:
        raise DecodeError("big-endian payloads are not supported")
    return Header(category, data_type, nb_dim, tuple(fields[7:13]), fields[19], header_size)


def encode_frame(frame: npt.NDArray, frame_idx: int) -> tuple[str, bytes]:
    """Encode a ``(channels, height, width)`` (or ``(height, width)``) frame as DATA_ARRAY."""
    data = np.ascontiguousarray(frame)
    if data.ndim == 2:
        data = data[np.newaxis]
    if data.ndim != 3:
        raise ValueError(f"a frame has 2 or 3 dimensions, not {data.ndim}")
    channels, height, width = data.shape
    header = _pack_header(Category.IMAGE, data.dtype, (width, height, channels), frame_idx)
    return DATA_ARRAY, header + data.astype(data.dtype.newbyteorder("<"), copy=False).tobytes()


def decode_frame(encoded: tuple[str, bytes] | bytes) -> tuple[npt.NDArray, int]:
    """Decode a DATA_ARRAY image into ``(array (channels, height, width), frame_idx)``."""
    if isinstance(encoded, tuple):
        fmt, raw = encoded
        if fmt != DATA_ARRAY:
            raise DecodeError(f"expected {DATA_ARRAY}, got {fmt!r}")
    else:
        raw = encoded
    header = parse_header(raw)
    if header.category != Category.IMAGE or header.nb_dim != 3:
        raise DecodeError(f"not an image (category {header.category}, nb_dim {header.nb_dim})")
    try:
        dtype = _NUMPY_OF[DataType(header.data_type)]
    except ValueError:
        raise DecodeError(f"unknown data type {header.data_type}") from None
    width, height, channels = header.dims[:3]
    data = np.frombuffer(raw, dtype=dtype.newbyteorder("<"), offset=header.header_size)
    if data.size != width * height * channels:
        raise DecodeError(f"payload holds {data.size} pixels, header says {width}x{height}x{channels}")
    return data.reshape(channels, height, width), header.frame_idx


def encode_rows(rows: npt.NDArray) -> tuple[str, bytes]:
    """Encode a structured array as STRUCTURED_ARRAY (header + packed rows)."""
    rows = np.ascontiguousarray(rows)
    header = _pack_header(Category.SCALAR_STACK, np.dtype(np.uint8), (rows.dtype.itemsize, rows.shape[0]), 0)
    return STRUCTURED_ARRAY, header + rows.tobytes()


def decode_rows(encoded: tuple[str, bytes], dtype: np.dtype) -> npt.NDArray:
    """Decode a STRUCTURED_ARRAY into rows of ``dtype`` (a read-only view)."""
    fmt, raw = encoded
    if fmt != STRUCTURED_ARRAY:
        raise DecodeError(f"expected {STRUCTURED_ARRAY}, got {fmt!r}")
    header = parse_header(raw)
    payload = len(raw) - header.header_size
    if payload % dtype.itemsize:
        raise DecodeError(f"{payload} payload bytes are not a whole number of {dtype.itemsize}-byte rows")
    return np.frombuffer(raw, dtype=dtype, offset=header.header_size)


# -- vectors ---------------------------------------------------------------------------------
def encode_vector(vector: npt.NDArray, frame_idx: int) -> tuple[str, bytes]:
    """Encode a 1-D array as a DATA_ARRAY spectrum."""
    data = np.ascontiguousarray(vector).reshape(-1)
    header = _pack_header(Category.SPECTRUM, data.dtype, (len(data),), frame_idx)
    return DATA_ARRAY, header + data.astype(data.dtype.newbyteorder("<"), copy=False).tobytes()


def decode_vector(encoded: tuple[str, bytes]) -> tuple[npt.NDArray, int]:
    """Decode a DATA_ARRAY spectrum into ``(1-D array, frame_idx)``."""
    fmt, raw = encoded
    if fmt != DATA_ARRAY:
        raise DecodeError(f"expected {DATA_ARRAY}, got {fmt!r}")
    header = parse_header(raw)
    if header.category != Category.SPECTRUM or header.nb_dim != 1:
        raise DecodeError(f"not a vector (category {header.category}, nb_dim {header.nb_dim})")
    try:
        dtype = _NUMPY_OF[DataType(header.data_type)]
    except ValueError:
        raise DecodeError(f"unknown data type {header.data_type}") from None
    data = np.frombuffer(raw, dtype=dtype.newbyteorder("<"), offset=header.header_size)
    if data.size != header.dims[0]:
        raise DecodeError(f"payload holds {data.size} values, header says {header.dims[0]}")
    return data, header.frame_idx


# -- sparse frames -----------------------------------------------------------------------------
SPARSE_HEADER = "<HHII"
SMX_SPARSE_HEADER = "<HHIII"
SPARSE_INTENSITY = np.dtype("<u2")


@dataclass(frozen=True)
class SparseFrame:
    """Pixels of a frame that are not zero; ``densify`` rebuilds the ``(1, h, w)`` frame."""

    width: int
    height: int
    index: npt.NDArray[np.int32]
    intensity: npt.NDArray
    frame_idx: int
    background_avg: npt.NDArray[np.float32] | None = None  # SMX: per radial bin
    background_std: npt.NDArray[np.float32] | None = None

    def densify(self) -> npt.NDArray:
        """The frame with the stored pixels placed on zeros (SMX: the peaks only)."""
        out = np.zeros(self.height * self.width, dtype=self.intensity.dtype)
        out[self.index] = self.intensity
        return out.reshape(1, self.height, self.width)


def encode_sparse(
    width: int, height: int, index: npt.NDArray, intensity: npt.NDArray, frame_idx: int
) -> tuple[str, bytes]:
    """SPARSE_FRAME: intensities are stored as uint16 (clipped), as the Lima2 decoder reads them."""
    values = np.asarray(intensity)
    if values.dtype != SPARSE_INTENSITY:
        values = np.clip(values, 0, np.iinfo(np.uint16).max).astype(SPARSE_INTENSITY)
    head = struct.pack(SPARSE_HEADER, width, height, len(index), max(0, int(frame_idx)))
    return SPARSE_FRAME, head + np.asarray(index, dtype="<i4").tobytes() + values.tobytes()


def encode_smx_sparse(
    width: int,
    height: int,
    index: npt.NDArray,
    intensity: npt.NDArray,
    background_avg: npt.NDArray,
    background_std: npt.NDArray,
    frame_idx: int,
) -> tuple[str, bytes]:
    head = struct.pack(SMX_SPARSE_HEADER, width, height, len(background_avg), len(index), max(0, int(frame_idx)))
    body = b"".join(
        np.asarray(a, dtype=t).tobytes()
        for a, t in ((index, "<i4"), (intensity, "<f4"), (background_avg, "<f4"), (background_std, "<f4"))
    )
    return SMX_SPARSE_FRAME, head + body


def decode_sparse(encoded: tuple[str, bytes]) -> SparseFrame:
    """Decode a SPARSE_FRAME or SMX_SPARSE_FRAME."""
    fmt, raw = encoded
    if fmt == SPARSE_FRAME:
        size = struct.calcsize(SPARSE_HEADER)
        if len(raw) < size:
            raise DecodeError(f"{fmt} payload of {len(raw)} bytes is shorter than its header")
        width, height, n, frame_idx = struct.unpack_from(SPARSE_HEADER, raw)
        if len(raw) < size + 6 * n:
            raise DecodeError(f"{fmt} payload too short for {n} pixels")
        index = np.frombuffer(raw, "<i4", n, size)
        intensity = np.frombuffer(raw, SPARSE_INTENSITY, n, size + 4 * n)
        return SparseFrame(width, height, index, intensity, frame_idx)
    if fmt == SMX_SPARSE_FRAME:
        size = struct.calcsize(SMX_SPARSE_HEADER)
        if len(raw) < size:
            raise DecodeError(f"{fmt} payload of {len(raw)} bytes is shorter than its header")
        width, height, bins, n, frame_idx = struct.unpack_from(SMX_SPARSE_HEADER, raw)
        if len(raw) < size + 8 * n + 8 * bins:
            raise DecodeError(f"{fmt} payload too short for {n} peaks and {bins} bins")
        index = np.frombuffer(raw, "<i4", n, size)
        intensity = np.frombuffer(raw, "<f4", n, size + 4 * n)
        avg = np.frombuffer(raw, "<f4", bins, size + 8 * n)
        std = np.frombuffer(raw, "<f4", bins, size + 8 * n + 4 * bins)
        return SparseFrame(width, height, index, intensity, frame_idx, avg, std)
    raise DecodeError(f"expected {SPARSE_FRAME} or {SMX_SPARSE_FRAME}, got {fmt!r}")


def densify(encoded: tuple[str, bytes]) -> tuple[str, bytes]:
    """Any frame payload as a DATA_ARRAY: sparse frames rebuilt (SMX: peaks only), vectors
    as a 1 x 1 x length image, images unchanged."""
    fmt, raw = encoded
    if fmt in (SPARSE_FRAME, SMX_SPARSE_FRAME):
        sparse = decode_sparse(encoded)
        return encode_frame(sparse.densify(), sparse.frame_idx)
    header = parse_header(raw)
    if header.category == Category.SPECTRUM:
        vector, frame_idx = decode_vector(encoded)
        return encode_frame(vector.reshape(1, 1, -1), frame_idx)
    return encoded
