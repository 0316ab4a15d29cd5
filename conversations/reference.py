"""Short case references a patient can read out on the phone: HZ-7K3M-9QXD."""

from __future__ import annotations

import hashlib

# Crockford's alphabet: no I, L, O or U, so nothing is misread.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def case_reference(case_id: str) -> str:
    number = int.from_bytes(hashlib.sha256(case_id.encode()).digest()[:5], "big")
    chars = "".join(_ALPHABET[(number >> shift) & 31] for shift in range(35, -1, -5))
    return f"HZ-{chars[:4]}-{chars[4:]}"
