"""How values are stored in the log's columns. Backend-neutral: every backend stores these bytes as they are.

Two row formats are read (`is_compact`):
- **compact** (``arm_set_id`` set; written since issue 15): the candidate product is stored once in ``arm_sets``
  (offer-set id, formats, time slots; keyed by their content hash) and referenced; ``eligible`` is a bitmask over
  that product (little-endian bit order; NULL: every candidate is eligible); ``pmf`` is float32 over the eligible
  arms (the chosen arm's probability stays exact in its REAL column); ``policy_pmf`` is only stored where it
  differs from the served pmf (NULL: equal), as the novelty mixture's parameters when they give it back
  within `MIXTURE_TOLERANCE` from the stored served pmf (``NV``, floor, spread, the outside-history
  bitmask unless every arm is outside; β is the row's), else float32; ``removed`` is the removal counts as five comma-separated
  integers in `REMOVAL_FIELDS` order, then which rule removed which offers and (format, slot) pairs
  (`decision_log.reasons`; NULL: none removed); ``offer_set`` is NULL (the arm set names it).
  Since schema 4 a compact row references its arm set by ``arm_set_key`` (`arm_set_key`: an integer, the
  ``arm_sets.key`` of the set; ``arm_set_id`` NULL) and stores its request fingerprint binary in
  ``request_hash`` (`fingerprint_to_blob`; ``fingerprint`` NULL); rows written before keep the text id and
  the text fingerprint, and read the same. Its ``context`` and ``numeric`` hold the values only
  (`values_text`), the key names held once in the arm set (`arm_set_code`); rows before hold JSON objects.
- **old** (``arm_set_id`` and ``arm_set_key`` NULL): ``eligible`` as u4 indices into the product of ``formats``/``time_slots`` (JSON
  per row), float64 ``pmf`` and ``policy_pmf`` blobs, ``removed`` as JSON.
Offer sets are canonical JSON named by their content hash, in both formats.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import struct
from collections.abc import Callable, Sequence

import numpy as np

from decision_log.reasons import reasons_text, split_removed
from policies.novelty import Mixture, policy_of_mixture
from policies.rules import RemovalCounts
from policies.types import Offer

__all__ = ["MIXTURE_MAGIC", "MIXTURE_TOLERANCE", "REMOVAL_FIELDS", "VALUE_SEPARATOR", "arm_set_code", "arm_set_feature_keys", "arm_set_key", "as_stored",
           "blob_to_fingerprint", "blob_to_indices", "blob_to_pmf", "decode_arm_set", "decode_offers",
           "eligible_to_mask", "encode_offers", "features_of", "fingerprint_to_blob", "indices_to_blob", "is_compact",
           "mask_to_indices", "pmf32_to_blob", "pmf_to_blob", "policy_pmf_blob", "policy_pmf_of", "removed_counts",
           "removed_text", "served_pmf", "values_text"]

#: The order of the removal counts in a compact row's ``removed`` column.
REMOVAL_FIELDS = tuple(f.name for f in dataclasses.fields(RemovalCounts))


def encode_offers(offers: Sequence[Offer]) -> tuple[str, str]:
    """Canonical JSON of an offer list and its content hash (the offer-set id)."""
    text = json.dumps([[o.id, dict(sorted(o.features.items()))] for o in offers], separators=(",", ":"),
                      ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32], text


def decode_offers(text: str) -> tuple[Offer, ...]:
    return tuple(Offer(oid, feats) for oid, feats in json.loads(text))


@functools.lru_cache(maxsize=4096)
def arm_set_code(offer_set_id: str, formats: tuple[str, ...], time_slots: tuple[str, ...],
                 context_keys: tuple[str, ...] = (), numeric_keys: tuple[str, ...] = ()) -> tuple[str, str]:
    """The content id and stored text of a candidate product (offer set × formats × time slots) and, since
    schema 4, the key names of the request's context and numeric features (its rows store the values only,
    `values_text`): ``[offer_set_id, formats, time_slots]`` plus ``context_keys, numeric_keys`` when any."""
    parts: list = [offer_set_id, list(formats), list(time_slots)]
    if context_keys or numeric_keys:
        parts += [list(context_keys), list(numeric_keys)]
    text = json.dumps(parts, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32], text


def decode_arm_set(text: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """The offer-set id, formats and time slots of a stored arm set."""
    offer_set_id, formats, time_slots = json.loads(text)[:3]
    return str(offer_set_id), tuple(formats), tuple(time_slots)


def arm_set_feature_keys(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The context and numeric key names a stored arm set holds (none in arm sets stored before schema 4)."""
    parts = json.loads(text)
    return (tuple(parts[3]), tuple(parts[4])) if len(parts) == 5 else ((), ())


#: separates (and starts) the values of a compact row's ``context``/``numeric`` (`values_text`)
VALUE_SEPARATOR = "\x1f"


def values_text(values: Sequence[object]) -> str:
    """A compact row's ``context`` or ``numeric`` since schema 4: the values in the order of the arm set's keys,
    each after a `VALUE_SEPARATOR` (floats as ``repr``: they read back exactly); "" for none; a JSON list when
    a value holds the separator."""
    texts = [v if isinstance(v, str) else repr(float(v)) for v in values]
    if any(VALUE_SEPARATOR in t for t in texts):
        return json.dumps(list(values), separators=(",", ":"), ensure_ascii=False)
    return "".join(VALUE_SEPARATOR + t for t in texts)


def features_of(text: str | None, keys: tuple[str, ...], cast: Callable[[str], object] = str) -> dict:
    """A row's ``context`` or ``numeric`` as a dict: a JSON object (rows before schema 4), or the values of
    `values_text` (each ``cast``: ``float`` for numeric features) named by ``keys`` (the arm set's)."""
    if not text:
        return {}
    if text.startswith(VALUE_SEPARATOR):
        values: list = [cast(t) for t in text[1:].split(VALUE_SEPARATOR)]
    else:
        value = json.loads(text)
        if not isinstance(value, list):
            return value
        values = value
    if len(values) != len(keys):
        raise ValueError(f"a row holds {len(values)} feature values for the arm set's {len(keys)} keys")
    return dict(zip(keys, values))


def arm_set_key(arm_set_id: str) -> int:
    """The integer key a compact row references its arm set by since schema 4 (8 bytes where the text id took
    32): the id's first 64 bits, shifted to 63 so it fits a signed 64-bit column. A key another arm set already
    holds is never used (`decision_log.sqlite.write_ops.keyed_rows`: such rows reference the text id)."""
    return int(arm_set_id[:16], 16) >> 1


def is_compact(arm_set_ref: object) -> bool:
    """Whether a row referencing this arm set (``arm_set_key``, else ``arm_set_id``) is in the compact format."""
    return arm_set_ref is not None


_HEX = frozenset("0123456789abcdef")


def fingerprint_to_blob(fingerprint: str | None) -> bytes | None:
    """A request fingerprint ``<version>:<hex digest>`` as stored since schema 4: the version's ASCII, ``:``,
    then the digest's bytes (19 bytes for ``f1:`` + 32 hex digits, where the text took 35); None for any other
    shape (such a fingerprint is stored as text)."""
    if fingerprint is None or fingerprint.count(":") != 1:
        return None
    version, digest = fingerprint.split(":")
    if not version.isascii() or len(digest) % 2 or not set(digest) <= _HEX:
        return None
    return version.encode("ascii") + b":" + bytes.fromhex(digest)


def blob_to_fingerprint(blob: bytes | None) -> str | None:
    """The fingerprint text of a `fingerprint_to_blob` value."""
    if blob is None:
        return None
    version, _, digest = bytes(blob).partition(b":")
    return f"{version.decode('ascii')}:{digest.hex()}"


def pmf_to_blob(pmf: np.ndarray) -> bytes:
    """An old-format (float64) pmf blob; also the shadow scores' format."""
    return np.asarray(pmf, dtype="<f8").tobytes()


def pmf32_to_blob(pmf: np.ndarray) -> bytes:
    """A compact-format pmf blob: float32 (relative error at most 2^-24 per entry)."""
    return np.asarray(pmf, dtype="<f4").tobytes()


#: a policy pmf stored as the novelty mixture that turned it into the served pmf (`policy_pmf_blob`)
MIXTURE_MAGIC = b"NV"
#: magic, floor, flags (1: spread per group, 2: every arm outside the history, no bitmask); then the bitmask
_MIXTURE_HEAD = struct.Struct("<2sdB")
_GROUPED, _ALL_OUTSIDE = 1, 2
#: a mixture is stored only if it gives the policy pmf back within this (absolute, per entry)
MIXTURE_TOLERANCE = 1e-6


def policy_pmf_blob(policy: np.ndarray, served: np.ndarray, mixture: Mixture | None = None,
                    stored_served: np.ndarray | None = None,
                    groups: np.ndarray | None = None) -> bytes | None:
    """The compact policy pmf: None where it equals the served pmf (e.g. β = 0); else, when the novelty
    ``mixture`` that made ``served`` gives it back from the served pmf *as stored* (``stored_served``,
    float32 with the chosen entry exact) within `MIXTURE_TOLERANCE`, the mixture's parameters (β is the
    row's ``beta``; 11 bytes, plus a bitmask of the arms outside the history unless all are); otherwise
    float32 (4 bytes an arm)."""
    policy = np.asarray(policy, dtype=np.float64)
    if policy.shape == np.shape(served) and np.array_equal(policy, served):
        return None
    if mixture is not None and mixture.outside is not None and stored_served is not None:
        back = policy_of_mixture(stored_served, mixture.outside, mixture.beta, mixture.floor,
                                 groups if mixture.grouped else None)
        if back is not None and back.shape == policy.shape and float(np.max(np.abs(back - policy))) <= MIXTURE_TOLERANCE:
            outside = np.asarray(mixture.outside, dtype=bool)
            flags = (_GROUPED if mixture.grouped else 0) | (_ALL_OUTSIDE if outside.all() else 0)
            head = _MIXTURE_HEAD.pack(MIXTURE_MAGIC, float(mixture.floor), flags)
            return head if outside.all() else head + np.packbits(outside, bitorder="little").tobytes()
    return pmf32_to_blob(policy)


def policy_pmf_of(blob: bytes | None, served: np.ndarray, compact: bool, beta: float,
                  groups_of: Callable[[], np.ndarray]) -> np.ndarray:
    """A row's policy pmf: the served one where none was stored (compact rows), the mixture's inverse where
    its parameters were (``beta``: the row's; ``groups_of()``: the eligible arms' category codes), else the
    stored vector."""
    if compact and blob is None:
        return served
    n = len(served)
    if compact and blob[:2] == MIXTURE_MAGIC and len(blob) in (_MIXTURE_HEAD.size, _MIXTURE_HEAD.size + (n + 7) // 8) \
            and len(blob) != 4 * n:
        _, floor, flags = _MIXTURE_HEAD.unpack_from(blob)
        if flags & _ALL_OUTSIDE:
            outside = np.ones(n, dtype=bool)
        else:
            outside = np.unpackbits(np.frombuffer(blob, dtype=np.uint8, offset=_MIXTURE_HEAD.size), count=n,
                                    bitorder="little").astype(bool)
        back = policy_of_mixture(served, outside, beta, floor, groups_of() if flags & _GROUPED else None)
        if back is not None:
            return back
    return blob_to_pmf(blob, compact)


def blob_to_pmf(blob: bytes | None, compact: bool = False) -> np.ndarray:
    """A stored pmf as float64 (float32 entries widened exactly in the compact format)."""
    if not blob:
        return np.zeros(0, dtype=np.float64)
    return np.frombuffer(blob, dtype="<f4" if compact else "<f8").astype(np.float64)


def served_pmf(blob: bytes | None, compact: bool, chosen: int | None, probability: float) -> np.ndarray:
    """A row's served pmf as float64: in the compact format the float32 entries widened, with the chosen
    arm's entry its exact logged probability (so ``pmf[chosen] == probability`` holds in both formats)."""
    pmf = blob_to_pmf(blob, compact)
    return _with_chosen(pmf, chosen, probability) if compact else pmf


def as_stored(pmf: np.ndarray, chosen: int | None, probability: float) -> np.ndarray:
    """A served pmf as a compact row reads back (`served_pmf`): float32 entries, the chosen one exact."""
    return _with_chosen(np.asarray(pmf, dtype=np.float32).astype(np.float64), chosen, probability)


def _with_chosen(pmf: np.ndarray, chosen: int | None, probability: float) -> np.ndarray:
    if chosen is not None and 0 <= chosen < len(pmf):
        pmf[chosen] = probability
    return pmf


def indices_to_blob(indices: Sequence[int]) -> bytes:
    return np.asarray(indices, dtype="<u4").tobytes()


def blob_to_indices(blob: bytes | None) -> np.ndarray:
    if not blob:
        return np.zeros(0, dtype=np.int64)
    return np.frombuffer(blob, dtype="<u4").astype(np.int64)


def eligible_to_mask(kept: np.ndarray, n_candidates: int) -> bytes | None:
    """The compact ``eligible``: None when all ``n_candidates`` are kept, else a bitmask of ceil(n / 8) bytes."""
    kept = np.asarray(kept, dtype=np.int64)
    if len(kept) == n_candidates and (n_candidates == 0 or (kept[0] == 0 and kept[-1] == n_candidates - 1)):
        return None  # kept is strictly increasing, so these ends mean every candidate
    if len(kept) == 0:
        return b""  # no set bit: no eligible arm
    bits = np.zeros(n_candidates, dtype=np.uint8)
    bits[kept] = 1
    return np.packbits(bits, bitorder="little").tobytes()


def mask_to_indices(mask: bytes | None, n_candidates: int) -> np.ndarray:
    """The eligible candidates' indices (ascending) of a compact ``eligible``."""
    if mask is None:
        return np.arange(n_candidates, dtype=np.int64)
    if not mask:  # (numpy's unpackbits of an empty buffer with a count returns garbage)
        return np.zeros(0, dtype=np.int64)
    bits = np.unpackbits(np.frombuffer(mask, dtype=np.uint8), count=n_candidates, bitorder="little")
    return np.flatnonzero(bits).astype(np.int64)


def removed_text(removed: RemovalCounts, offer_codes: np.ndarray | None = None,
                 pair_codes: np.ndarray | None = None) -> str:
    """The compact ``removed`` column: the five counts, comma-separated, in `REMOVAL_FIELDS` order, then the
    rules' verdicts per offer and per (format, slot) pair when given (`decision_log.reasons`); "" when
    nothing was removed (stored as NULL)."""
    if removed.total == 0:
        return ""
    counts = ",".join(str(int(getattr(removed, name))) for name in REMOVAL_FIELDS)
    return counts + reasons_text(offer_codes, pair_codes)


def removed_counts(text: str | None) -> RemovalCounts:
    """The removal counts of either format (JSON in old rows; unknown JSON keys are ignored)."""
    if not text:
        return RemovalCounts()
    if text.lstrip().startswith("{"):
        counts = json.loads(text)
        return RemovalCounts(**{name: int(counts[name]) for name in REMOVAL_FIELDS if name in counts})
    counts_text, _ = split_removed(text)
    return RemovalCounts(*(int(part) for part in counts_text.split(",")))
