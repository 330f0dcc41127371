"""Which kind of checkpoint a file is, from its first bytes."""

from __future__ import annotations

import os
import struct

from micronet_score.errors import CheckpointError
from micronet_score.io.files import OpenedFile

__all__ = ["sniff"]

_ZIP_MAGIC = b"PK\x03\x04"


def sniff(opened: OpenedFile) -> str:
    """``"safetensors"``, ``"torch-zip"`` or ``"pickle"`` (torch's legacy format), else a CheckpointError."""
    head = os.pread(opened.fd, 9, 0)
    size, name = opened.size, opened.name
    if head.startswith(_ZIP_MAGIC):
        return "torch-zip"
    if len(head) == 9 and head[8:9] == b"{":
        (header_len,) = struct.unpack("<Q", head[:8])
        if 2 <= header_len <= size - 8:
            return "safetensors"
        raise CheckpointError(f"{name} looks like a truncated safetensors file: its header announces "
                              f"{header_len:,} bytes but only {size - 8:,} follow the length field")
    if head[:1] == b"\x80":
        return "pickle"
    if size < 8:
        raise CheckpointError(f"{name} is not a checkpoint: {size} bytes, too short for safetensors or a torch "
                              "zip archive")
    raise CheckpointError(f"{name} is not a checkpoint: it starts with {head[:8]!r}, neither a safetensors "
                          "header nor a PyTorch zip archive (torch.save)")
