"""The tutorial's client shape: the anchor for bench row 2(b).

Sequential: one token request, then for each UUID one `requests.post` with no Session, so
every request opens (and closes) its own connection, exactly as the tutorial's script does.
Prints one JSON object: {"requested", "succeeded", "failed", "elapsed_s", "throughput_per_s"}.

Usage: python3 tutorial_client.py N
Environment: CXONE_CLIENT_ID, CXONE_CLIENT_SECRET, CXONE_DATA_ACTION_ID, CXONE_BASE_URL,
CXONE_TOKEN_URL (the bench points them at its loopback mock).
"""

import json
import os
import secrets
import sys
import time
import uuid

import requests


def generate_uuid():
    raw = bytearray(secrets.token_bytes(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(raw)))


def get_token():
    response = requests.post(
        os.environ["CXONE_TOKEN_URL"],
        data={
            "grant_type": "client_credentials",
            "client_id": os.environ["CXONE_CLIENT_ID"],
            "client_secret": os.environ["CXONE_CLIENT_SECRET"],
            "scope": "data-actions:execute",
        },
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["access_token"]


def main():
    count = int(sys.argv[1])
    base = os.environ["CXONE_BASE_URL"].rstrip("/")
    action = os.environ["CXONE_DATA_ACTION_ID"]
    url = f"{base}/api/v2/data-actions/{action}/execute"
    start = time.perf_counter()
    token = get_token()
    seen = set()
    succeeded = failed = 0
    for _ in range(count):
        value = generate_uuid()
        while value in seen:
            value = generate_uuid()
        seen.add(value)
        try:
            response = requests.post(
                url,
                json={"inputs": {"uuid": value}},
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": value},
                timeout=10,
            )
            if response.status_code == 200:
                succeeded += 1
            else:
                failed += 1
        except requests.RequestException:
            failed += 1
    elapsed = time.perf_counter() - start
    print(
        json.dumps(
            {
                "requested": count,
                "succeeded": succeeded,
                "failed": failed,
                "elapsed_s": round(elapsed, 6),
                "throughput_per_s": round(count / elapsed, 1) if elapsed > 0 else 0.0,
            }
        )
    )


if __name__ == "__main__":
    main()
