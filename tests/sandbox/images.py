"""Small images made in the test, so the tests need no image files."""

import struct
import zlib


def png(width=24, height=16, rgb=(42, 109, 176)):
    """A solid PNG."""

    def chunk(kind, data):
        crc = zlib.crc32(kind + data).to_bytes(4, "big")
        return len(data).to_bytes(4, "big") + kind + data + crc

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def gif_header(width, height):
    """The start of a GIF: signature and logical screen descriptor."""
    return b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0)


def jpeg_header(width, height):
    """The start of a baseline JPEG up to its frame header, after a JFIF and an EXIF-like
    segment, as cameras write them: what a size reader must get past."""
    jfif = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    app1 = b"\xff\xe1" + struct.pack(">H", 8) + b"Exif\x00\x00"
    frame = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + bytes(9)
    return b"\xff\xd8" + jfif + app1 + frame + b"\xff\xd9"
