"""The size of an uploaded image, read from its header: PNG, GIF and JPEG.

Flowdock describes image attachments with their ``image`` width and height and a
``thumbnail``; the sandbox needs no imaging library to do the same.
"""

import struct

#: Thumbnails fit in a square of this many pixels, as the 1920x1087 screenshot in
#: Flowdock's message-types docs has a 100x57 thumbnail.
THUMBNAIL_BOX = 100

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG's start-of-frame markers, which carry the size: C0-CF but for DHT (C4), JPG
# (C8) and DAC (CC).
JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length: TEM, RST0-7, SOI.
JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of a PNG, GIF or JPEG image; ``None`` for anything else."""
    size = None
    if data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR" and len(data) >= 24:
        size = struct.unpack(">II", data[16:24])
    elif data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        size = struct.unpack("<HH", data[6:10])
    elif data.startswith(b"\xff\xd8"):
        size = _jpeg_size(data)
    if size is None or not all(size):
        return None
    return size


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in JPEG_STANDALONE:
            position += 2
            continue
        if marker in JPEG_FRAMES:
            if position + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        position += 2 + length
    return None


def thumbnail_size(width: int, height: int) -> tuple[int, int]:
    """The size fitting ``THUMBNAIL_BOX``, keeping the proportions; never enlarged."""
    scale = min(1.0, THUMBNAIL_BOX / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))
