"""How values are stored in the log's columns: pmfs and arm indices as little-endian blobs, offer sets as
canonical JSON named by their content hash. Backend-neutral: every backend stores these bytes as they are."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np

from policies.types import Offer

__all__ = ["blob_to_indices", "blob_to_pmf", "decode_offers", "encode_offers", "indices_to_blob", "pmf_to_blob"]


def encode_offers(offers: Sequence[Offer]) -> tuple[str, str]:
    """Canonical JSON of an offer list and its content hash (the offer-set id)."""
    text = json.dumps([[o.id, dict(sorted(o.features.items()))] for o in offers], separators=(",", ":"),
                      ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32], text


def decode_offers(text: str) -> tuple[Offer, ...]:
    return tuple(Offer(oid, feats) for oid, feats in json.loads(text))


def pmf_to_blob(pmf: np.ndarray) -> bytes:
    return np.asarray(pmf, dtype="<f8").tobytes()


def blob_to_pmf(blob: bytes | None) -> np.ndarray:
    if not blob:
        return np.zeros(0, dtype=np.float64)
    return np.frombuffer(blob, dtype="<f8").copy()


def indices_to_blob(indices: Sequence[int]) -> bytes:
    return np.asarray(indices, dtype="<u4").tobytes()


def blob_to_indices(blob: bytes | None) -> np.ndarray:
    if not blob:
        return np.zeros(0, dtype=np.int64)
    return np.frombuffer(blob, dtype="<u4").astype(np.int64)
