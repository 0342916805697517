"""S3-style listing over the metadata store: prefix, delimiter (common prefixes), pages, tokens.

The continuation token is the next lower bound of the key range, base64url-encoded: after an
object `k` that is `k + "\\0"` (keys never hold NUL), after a common prefix `p/` it is the
first string past every key under `p/`, so a page never repeats what the previous one returned.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from servers.kit import ToolError
from servers.storage.metadata import MetadataStore, ObjectRecord, prefix_upper_bound

MAX_KEYS = 1000


@dataclass
class Listing:
    objects: list[ObjectRecord] = field(default_factory=list)
    common_prefixes: list[str] = field(default_factory=list)
    is_truncated: bool = False
    next_token: str | None = None


def encode_token(bound: str) -> str:
    return base64.urlsafe_b64encode(bound.encode("utf-8")).decode().rstrip("=")


def decode_token(token: str, field_name: str = "continuation_token") -> str:
    try:
        padded = token + "=" * (-len(token) % 4)
        return base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise ToolError("continuation token is not one this server issued", field=field_name) from None


async def list_objects(
    meta: MetadataStore,
    bucket: str,
    now: float,
    *,
    prefix: str = "",
    delimiter: str = "",
    max_keys: int = MAX_KEYS,
    start: str = "",
) -> Listing:
    """One page of at most `max_keys` entries (objects plus common prefixes) from `start` on."""
    listing = Listing()
    max_keys = max(0, min(max_keys, MAX_KEYS))
    cursor = start
    count = 0
    done = False
    while not done:
        limit = max_keys - count + 1
        batch = await meta.list(bucket, cursor, prefix, limit, now)
        requery = False
        for record in batch:
            if count == max_keys:
                listing.is_truncated = True
                done = True
                break
            if delimiter:
                position = record.key.find(delimiter, len(prefix))
                if position >= 0:
                    common = record.key[: position + len(delimiter)]
                    listing.common_prefixes.append(common)
                    count += 1
                    upper = prefix_upper_bound(common)
                    if upper is None:
                        done = True
                    else:
                        # The rest of this batch may sit under `common`: query again past it.
                        cursor = upper
                        requery = True
                    break
            listing.objects.append(record)
            count += 1
            cursor = record.key + "\0"
        if not requery and len(batch) < limit:
            done = True
    if listing.is_truncated:
        listing.next_token = encode_token(cursor)
    return listing
