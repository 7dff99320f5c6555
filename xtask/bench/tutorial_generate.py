"""The tutorial's generation method, as users run it today: the anchor for bench row 1(b).

secrets.token_bytes(16), version and variant bits fixed by hand, uuid.UUID(...), and a Python
set for uniqueness. Prints N UUIDs one a line (the bench sends them to /dev/null), then the
seconds spent generating on stderr as `elapsed_s=...`.

Usage: python3 tutorial_generate.py N
"""

import secrets
import sys
import time
import uuid


def generate_uuid():
    raw = bytearray(secrets.token_bytes(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return str(uuid.UUID(bytes=bytes(raw)))


def main():
    count = int(sys.argv[1])
    seen = set()
    out = sys.stdout
    start = time.perf_counter()
    made = 0
    while made < count:
        value = generate_uuid()
        if value in seen:
            continue
        seen.add(value)
        out.write(value + "\n")
        made += 1
    out.flush()
    print(f"elapsed_s={time.perf_counter() - start:.6f}", file=sys.stderr)


if __name__ == "__main__":
    main()
