"""Where each kind of file lives in storage, in one place.

Inputs are kept under ``inputs/``, outputs under ``outputs/``, each spread over 256 folders by
two hex digits of its id. An output's public name is ``<file id>.<format>``; download links
carry only that name, never a storage path.
"""

from __future__ import annotations

import re

EXT = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp", "image/gif": "gif"}
OUTPUT_NAME = re.compile(r"^(file_[0-9a-f]{24})\.(png|jpeg|webp)$")


def input_key(file_id: str, mime: str) -> str:
    """``in_<hex>`` ids: the folder is the first two hex digits."""
    return f"inputs/{file_id[3:5]}/{file_id}.{EXT.get(mime, 'bin')}"


def output_name(file_id: str, fmt: str) -> str:
    return f"{file_id}.{fmt}"


def output_key(name: str) -> str:
    """``file_<hex>.<fmt>`` names: the folder is the first two hex digits."""
    return f"outputs/{name[5:7]}/{name}"
