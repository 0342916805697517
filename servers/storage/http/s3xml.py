"""S3's XML: the responses boto3 parses, the two request bodies it sends, and error bodies.

Request bodies are parsed only after a size cap, and any DTD is refused, so entity expansion
tricks never reach the parser.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import formatdate
from urllib.parse import quote_plus
from xml.sax.saxutils import escape

from servers.kit import ToolError
from servers.storage.listing import Listing
from servers.storage.metadata import ObjectRecord, PartRecord

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_TYPE = "application/xml"
OWNER = "<Owner><ID>toolmux</ID><DisplayName>toolmux</DisplayName></Owner>"


def iso8601(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def http_date(timestamp: float) -> str:
    return formatdate(timestamp, usegmt=True)


def quoted_etag(etag: str) -> str:
    return f'"{etag}"'


def _element(name: str, value: object) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


def _document(root: str, body: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{NAMESPACE}">{body}</{root}>'.encode()


def error_body(s3_code: str, message: str, resource: str, request_id: str) -> bytes:
    body = (
        f"<Error>{_element('Code', s3_code)}{_element('Message', message)}"
        f"{_element('Resource', resource)}{_element('RequestId', request_id)}</Error>"
    )
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}'.encode()


def list_buckets(names: Iterable[str], created: float) -> bytes:
    buckets = "".join(
        f"<Bucket>{_element('Name', n)}{_element('CreationDate', iso8601(created))}</Bucket>" for n in names
    )
    return _document("ListAllMyBucketsResult", f"{OWNER}<Buckets>{buckets}</Buckets>")


def _contents(record: ObjectRecord, encode: bool) -> str:
    key = quote_plus(record.key, safe="/") if encode else record.key
    return (
        f"<Contents>{_element('Key', key)}{_element('LastModified', iso8601(record.modified))}"
        f"{_element('ETag', quoted_etag(record.etag))}{_element('Size', record.size)}"
        f"<StorageClass>STANDARD</StorageClass></Contents>"
    )


def list_objects(
    bucket: str,
    listing: Listing,
    *,
    prefix: str,
    delimiter: str,
    max_keys: int,
    encode: bool,
    v2: bool,
    continuation_token: str | None = None,
    start_after: str | None = None,
    marker: str | None = None,
) -> bytes:
    def text(value: str) -> str:
        return quote_plus(value, safe="/") if encode else value

    parts = [_element("Name", bucket), _element("Prefix", text(prefix))]
    if v2:
        parts.append(_element("KeyCount", len(listing.objects) + len(listing.common_prefixes)))
        if continuation_token:
            parts.append(_element("ContinuationToken", continuation_token))
        if start_after:
            parts.append(_element("StartAfter", text(start_after)))
        if listing.next_token:
            parts.append(_element("NextContinuationToken", listing.next_token))
    else:
        parts.append(_element("Marker", text(marker or "")))
        if listing.is_truncated:
            last = max([r.key for r in listing.objects] + listing.common_prefixes)
            parts.append(_element("NextMarker", text(last)))
    parts.append(_element("MaxKeys", max_keys))
    if delimiter:
        parts.append(_element("Delimiter", text(delimiter)))
    if encode:
        parts.append("<EncodingType>url</EncodingType>")
    parts.append(_element("IsTruncated", "true" if listing.is_truncated else "false"))
    parts.extend(_contents(r, encode) for r in listing.objects)
    parts.extend(f"<CommonPrefixes>{_element('Prefix', text(p))}</CommonPrefixes>" for p in listing.common_prefixes)
    return _document("ListBucketResult", "".join(parts))


def copy_result(record: ObjectRecord) -> bytes:
    return _document(
        "CopyObjectResult",
        _element("LastModified", iso8601(record.modified)) + _element("ETag", quoted_etag(record.etag)),
    )


def initiate_multipart(bucket: str, key: str, upload_id: str) -> bytes:
    return _document(
        "InitiateMultipartUploadResult",
        _element("Bucket", bucket) + _element("Key", key) + _element("UploadId", upload_id),
    )


def complete_multipart(location: str, record: ObjectRecord) -> bytes:
    return _document(
        "CompleteMultipartUploadResult",
        _element("Location", location)
        + _element("Bucket", record.bucket)
        + _element("Key", record.key)
        + _element("ETag", quoted_etag(record.etag)),
    )


def list_parts(bucket: str, key: str, upload_id: str, parts: list[PartRecord]) -> bytes:
    body = "".join(
        f"<Part>{_element('PartNumber', p.part_number)}{_element('LastModified', iso8601(p.modified))}"
        f"{_element('ETag', quoted_etag(p.etag))}{_element('Size', p.size)}</Part>"
        for p in parts
    )
    return _document(
        "ListPartsResult",
        _element("Bucket", bucket)
        + _element("Key", key)
        + _element("UploadId", upload_id)
        + "<IsTruncated>false</IsTruncated>"
        + body,
    )


def delete_result(deleted: list[str], errors: list[tuple[str, str, str]], quiet: bool) -> bytes:
    body = "" if quiet else "".join(f"<Deleted>{_element('Key', k)}</Deleted>" for k in deleted)
    body += "".join(
        f"<Error>{_element('Key', k)}{_element('Code', c)}{_element('Message', m)}</Error>" for k, c, m in errors
    )
    return _document("DeleteResult", body)


def location() -> bytes:
    return _document("LocationConstraint", "")


# --- request bodies ------------------------------------------------------------------------------
def _parse(body: bytes) -> ET.Element:
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise ToolError("XML bodies must not contain a DTD", data={"s3_code": "MalformedXML"})
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        raise ToolError("the request body is not well-formed XML", data={"s3_code": "MalformedXML"}) from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def _text(element: ET.Element, name: str) -> str | None:
    found = _children(element, name)
    return (found[0].text or "") if found else None


def parse_delete(body: bytes) -> tuple[list[str], bool]:
    """Keys and the Quiet flag of a DeleteObjects body."""
    root = _parse(body)
    if _local(root.tag) != "Delete":
        raise ToolError("expected a <Delete> document", data={"s3_code": "MalformedXML"})
    keys = [_text(obj, "Key") or "" for obj in _children(root, "Object")]
    if not keys or len(keys) > 1000:
        raise ToolError("DeleteObjects takes 1-1000 keys", data={"s3_code": "MalformedXML"})
    return keys, (_text(root, "Quiet") or "").strip().lower() == "true"


def parse_complete(body: bytes) -> list[tuple[int, str]]:
    """(part number, ETag) pairs of a CompleteMultipartUpload body."""
    root = _parse(body)
    if _local(root.tag) != "CompleteMultipartUpload":
        raise ToolError("expected a <CompleteMultipartUpload> document", data={"s3_code": "MalformedXML"})
    parts = []
    for part in _children(root, "Part"):
        number, etag = _text(part, "PartNumber"), _text(part, "ETag")
        if number is None or etag is None or not number.strip().isdigit():
            raise ToolError("every <Part> needs a PartNumber and an ETag", data={"s3_code": "MalformedXML"})
        parts.append((int(number), etag.strip()))
    return parts
