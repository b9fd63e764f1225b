"""Where each kind of file lives in storage, in one place.

Inputs are kept under ``inputs/``, outputs under ``outputs/``, each spread over 256 folders by
two hex digits of its id. An output's public name is ``<file id>.<format>``; download links
carry only that name, never a storage path. An output's thumbnails live under ``thumbs/``, named
after it, and are removed with it.
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


#: the sides a thumbnail may have: a short list, so an output has a bounded number of cached previews
#: and removing an output removes each of them by name (no listing of the store)
THUMB_SIZES = (64, 128, 256, 512)


def thumb_key(file_id: str, size: int) -> str:
    """``file_<hex>``'s preview at ``size``, beside the outputs' layout, in the same folder spread."""
    return f"thumbs/{file_id[5:7]}/{file_id}.{size}.webp"


def derived_keys(key: str) -> list[str]:
    """What is made from the file at ``key`` and must go with it: an output's thumbnails."""
    found = OUTPUT_NAME.match(key.rsplit("/", 1)[-1]) if key.startswith("outputs/") else None
    return [thumb_key(found.group(1), s) for s in THUMB_SIZES] if found else []
