"""S3 compatibility, driven by the real boto3 against the storage face on loopback."""

from __future__ import annotations

import datetime
import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import anyio
import boto3
import httpx2
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from servers.kit import ToolError
from servers.storage.http.sigv4 import AwsChunkedDecoder, canonical_request, parse_header_auth, signature_for
from tests.support.storage import MASTER_KEY, ServedStorage, serve_storage

pytestmark = pytest.mark.anyio
T = TypeVar("T")
MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def _aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # No instance metadata lookups, no user config: only the explicit credentials below count.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@functools.cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()  # one session: its loader caches the parsed S3 model


def s3_client(served: ServedStorage, key_id: str = "master", secret: str = MASTER_KEY, **config: Any) -> BaseClient:
    return _session().client(
        "s3",
        endpoint_url=served.s3_endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config),
    )


async def in_thread(fn: Callable[[], T]) -> T:
    with anyio.fail_after(120):
        return await anyio.to_thread.run_sync(fn)


def error_code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


async def test_put_get_head_list_and_delete_through_boto3(tmp_path: Path) -> None:
    async with serve_storage(tmp_path) as served:
        s3 = s3_client(served)

        def scenario() -> None:
            keys = ["dir/a b.txt", "dir/ü+plus.txt", "dir/sub/c.txt", "top.txt", "zeta"]
            for key in keys:
                s3.put_object(Bucket="default", Key=key, Body=key.encode(), Metadata={"origin": "test"})
            got = s3.get_object(Bucket="default", Key="dir/ü+plus.txt")
            assert got["Body"].read() == "dir/ü+plus.txt".encode()
            head = s3.head_object(Bucket="default", Key="dir/a b.txt")
            assert head["ContentLength"] == len("dir/a b.txt")
            assert head["ETag"] == f'"{hashlib.md5(b"dir/a b.txt").hexdigest()}"'
            assert head["Metadata"] == {"origin": "test"}

            listed = s3.list_objects_v2(Bucket="default", Prefix="dir/", Delimiter="/")
            assert [o["Key"] for o in listed["Contents"]] == ["dir/a b.txt", "dir/ü+plus.txt"]
            assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["dir/sub/"]
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket="default", PaginationConfig={"PageSize": 2})
            assert [o["Key"] for page in pages for o in page.get("Contents", [])] == sorted(keys)
            assert [o["Key"] for o in s3.list_objects(Bucket="default", Prefix="t")["Contents"]] == ["top.txt"]
            assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["default", "uploads"]

            s3.delete_object(Bucket="default", Key="top.txt")
            with pytest.raises(ClientError) as missing:
                s3.get_object(Bucket="default", Key="top.txt")
            assert error_code(missing.value) == "NoSuchKey"
            with pytest.raises(ClientError) as no_bucket:
                s3.head_bucket(Bucket="nothing-here")
            assert no_bucket.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

        await in_thread(scenario)


async def test_upload_file_and_download_file_including_a_20_mb_multipart_object(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(21 * MiB))
    small = tmp_path / "small.txt"
    small.write_text("small file")
    async with serve_storage(tmp_path / "data") as served:
        s3 = s3_client(served)

        def scenario() -> None:
            s3.upload_file(str(small), "default", "files/small.txt")
            s3.upload_file(str(big), "default", "files/big.bin")  # over 8 MB: multipart, 3 parts
            head = s3.head_object(Bucket="default", Key="files/big.bin")
            assert head["ContentLength"] == 21 * MiB and head["ETag"].endswith('-3"')
            s3.download_file("default", "files/big.bin", str(tmp_path / "big.out"))  # ranged GETs
            s3.download_file("default", "files/small.txt", str(tmp_path / "small.out"))

        await in_thread(scenario)
        assert (tmp_path / "big.out").read_bytes() == big.read_bytes()
        assert (tmp_path / "small.out").read_text() == "small file"
        assert not list((tmp_path / "data" / "storage" / "multipart").iterdir())


async def test_multipart_upload_by_hand_completes_aborts_and_refuses_bad_parts(tmp_path: Path) -> None:
    async with serve_storage(tmp_path) as served:
        s3 = s3_client(served)

        def scenario() -> None:
            first, last = b"a" * (5 * MiB), b"tail"
            upload = s3.create_multipart_upload(Bucket="default", Key="mp", ContentType="application/x-parts")
            uid = upload["UploadId"]
            e1 = s3.upload_part(Bucket="default", Key="mp", UploadId=uid, PartNumber=1, Body=first)["ETag"]
            e2 = s3.upload_part(Bucket="default", Key="mp", UploadId=uid, PartNumber=2, Body=last)["ETag"]
            assert [p["PartNumber"] for p in s3.list_parts(Bucket="default", Key="mp", UploadId=uid)["Parts"]] == [1, 2]
            with pytest.raises(ClientError) as bad_part:
                s3.complete_multipart_upload(
                    Bucket="default",
                    Key="mp",
                    UploadId=uid,
                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0123"'}]},
                )
            assert error_code(bad_part.value) == "InvalidPart"
            parts = [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]
            done = s3.complete_multipart_upload(
                Bucket="default", Key="mp", UploadId=uid, MultipartUpload={"Parts": parts}
            )
            assert done["ETag"].endswith('-2"')
            got = s3.get_object(Bucket="default", Key="mp")
            assert got["Body"].read() == first + last and got["ContentType"] == "application/x-parts"

            small = s3.create_multipart_upload(Bucket="default", Key="tiny")["UploadId"]
            t1 = s3.upload_part(Bucket="default", Key="tiny", UploadId=small, PartNumber=1, Body=b"x")["ETag"]
            t2 = s3.upload_part(Bucket="default", Key="tiny", UploadId=small, PartNumber=2, Body=b"y")["ETag"]
            with pytest.raises(ClientError) as too_small:
                s3.complete_multipart_upload(
                    Bucket="default",
                    Key="tiny",
                    UploadId=small,
                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": t1}, {"PartNumber": 2, "ETag": t2}]},
                )
            assert error_code(too_small.value) == "EntityTooSmall"
            s3.abort_multipart_upload(Bucket="default", Key="tiny", UploadId=small)
            with pytest.raises(ClientError) as aborted:
                s3.upload_part(Bucket="default", Key="tiny", UploadId=small, PartNumber=3, Body=b"z")
            assert error_code(aborted.value) == "NoSuchUpload"

        await in_thread(scenario)


async def test_copy_object_and_delete_objects(tmp_path: Path) -> None:
    async with serve_storage(tmp_path) as served:
        s3 = s3_client(served)

        def scenario() -> None:
            s3.put_object(Bucket="default", Key="src", Body=b"original", ContentType="text/x-src", Metadata={"a": "1"})
            s3.copy_object(Bucket="uploads", Key="copy", CopySource={"Bucket": "default", "Key": "src"})
            copied = s3.get_object(Bucket="uploads", Key="copy")
            assert copied["Body"].read() == b"original"
            assert (copied["ContentType"], copied["Metadata"]) == ("text/x-src", {"a": "1"})
            s3.copy_object(
                Bucket="default",
                Key="replaced",
                CopySource="default/src",
                MetadataDirective="REPLACE",
                ContentType="text/plain",
                Metadata={"b": "2"},
            )
            head = s3.head_object(Bucket="default", Key="replaced")
            assert (head["ContentType"], head["Metadata"]) == ("text/plain", {"b": "2"})

            result = s3.delete_objects(
                Bucket="default", Delete={"Objects": [{"Key": "src"}, {"Key": "replaced"}, {"Key": "never-existed"}]}
            )
            assert sorted(d["Key"] for d in result["Deleted"]) == ["never-existed", "replaced", "src"]
            assert s3.list_objects_v2(Bucket="default")["KeyCount"] == 0

        await in_thread(scenario)


async def test_generate_presigned_url_links_work_and_tampered_or_expired_ones_fail(tmp_path: Path) -> None:
    async with serve_storage(tmp_path) as served:
        default_signer = s3_client(served)  # boto3 still presigns with SigV2 by default
        sigv4_signer = s3_client(served, signature_version="s3v4")

        def make_urls() -> dict[str, str]:
            default_signer.put_object(Bucket="default", Key="shared/report.txt", Body=b"quarterly numbers")
            params = {"Bucket": "default", "Key": "shared/report.txt"}
            past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
            with mock.patch("botocore.auth.get_current_datetime", return_value=past):
                expired_v4 = sigv4_signer.generate_presigned_url("get_object", Params=params, ExpiresIn=60)
            return {
                "v2": default_signer.generate_presigned_url("get_object", Params=params, ExpiresIn=300),
                "v4": sigv4_signer.generate_presigned_url("get_object", Params=params, ExpiresIn=300),
                "expired_v2": default_signer.generate_presigned_url("get_object", Params=params, ExpiresIn=-5),
                "expired_v4": expired_v4,
                "put_v4": sigv4_signer.generate_presigned_url(
                    "put_object", Params={"Bucket": "default", "Key": "shared/upload.txt"}, ExpiresIn=300
                ),
            }

        urls = await in_thread(make_urls)
        async with httpx2.AsyncClient() as http:
            for name in ("v2", "v4"):
                response = await http.get(urls[name])
                assert response.status_code == 200 and response.content == b"quarterly numbers", name
                tampered = await http.get(urls[name].replace("report.txt", "report.tx%74x"))
                assert tampered.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in tampered.content
            for name in ("expired_v2", "expired_v4"):
                expired = await http.get(urls[name])
                assert expired.status_code == 403 and b"expired" in expired.content, name
            uploaded = await http.put(urls["put_v4"], content=b"sent via link")
            assert uploaded.status_code == 200
            check = await http.get(f"{served.url}/storage/default/shared/upload.txt", headers={"x-api-key": MASTER_KEY})
            assert check.content == b"sent via link"


async def test_a_bucket_name_and_its_key_work_as_s3_credentials_for_that_bucket_only(tmp_path: Path) -> None:
    async with serve_storage(tmp_path) as served:
        s3 = s3_client(served, key_id="default", secret=served.bucket_key("default"))

        def scenario() -> None:
            s3.put_object(Bucket="default", Key="k", Body=b"v")
            assert s3.get_object(Bucket="default", Key="k")["Body"].read() == b"v"
            assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["default"]
            for bucket in ("uploads", "unknown-bucket"):
                with pytest.raises(ClientError) as denied:
                    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
                assert error_code(denied.value) == "AccessDenied"

        await in_thread(scenario)


async def test_bad_credentials_and_malformed_signatures_get_s3_xml_errors(tmp_path: Path) -> None:
    async with serve_storage(tmp_path, {"buckets": [{"name": "small", "max_object_size": 100}]}) as served:
        wrong_secret = s3_client(served, secret="not-the-master-key")
        unknown_id = s3_client(served, key_id="nobody", secret="whatever")
        master = s3_client(served)

        def scenario() -> None:
            for client in (wrong_secret, unknown_id):
                with pytest.raises(ClientError) as refused:
                    client.list_objects_v2(Bucket="small")
                assert error_code(refused.value) == "SignatureDoesNotMatch"
            stale = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
            with (
                mock.patch("botocore.auth.get_current_datetime", return_value=stale),
                pytest.raises(ClientError) as skewed,
            ):
                master.list_objects_v2(Bucket="small")
            assert error_code(skewed.value) == "RequestTimeTooSkewed"
            with pytest.raises(ClientError) as too_big:
                master.put_object(Bucket="small", Key="k", Body=b"x" * 101)
            assert error_code(too_big.value) == "EntityTooLarge"
            assert too_big.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413

        await in_thread(scenario)
        async with httpx2.AsyncClient(base_url=served.url) as http:
            malformed = await http.get(
                "/storage/small", headers={"Authorization": "AWS4-HMAC-SHA256 Credential=broken", "x-amz-date": "x"}
            )
            assert malformed.status_code == 400
            assert b"<Code>AuthorizationHeaderMalformed</Code>" in malformed.content
            v2 = await http.get("/storage/small", headers={"Authorization": "AWS master:c2lnbmF0dXJl"})
            assert v2.status_code == 400 and b"Signature Version 2" in v2.content
            acl = await http.get("/storage/small/k?acl", headers={"Authorization": f"Bearer {MASTER_KEY}"})
            assert acl.status_code == 501


async def test_aws_chunked_uploads_with_a_crc32_trailer_as_boto3_sends_over_https(tmp_path: Path) -> None:
    body = os.urandom(3 * MiB + 5)
    async with serve_storage(tmp_path) as served:
        s3 = s3_client(served)

        def force_trailer(params: dict[str, Any], **_: Any) -> None:
            # botocore sends checksums as an aws-chunked trailer only over TLS; make it do so here.
            params["context"]["checksum"]["request_algorithm"]["in"] = "trailer"

        s3.meta.events.register("before-call.s3.PutObject", force_trailer)

        def scenario() -> bytes:
            s3.put_object(Bucket="default", Key="chunked.bin", Body=body)
            return bytes(s3.get_object(Bucket="default", Key="chunked.bin")["Body"].read())

        assert await in_thread(scenario) == body


# The worked example of AWS's "Signature Calculations for the Authorization Header: Transferring
# Payload in Multiple Chunks" documentation: seed and chunk signatures computed by AWS.
AWS_EXAMPLE_HEADERS = {
    "content-encoding": "aws-chunked",
    "content-length": "66824",
    "host": "s3.amazonaws.com",
    "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    "x-amz-date": "20130524T000000Z",
    "x-amz-decoded-content-length": "66560",
    "x-amz-storage-class": "REDUCED_REDUNDANCY",
}
AWS_EXAMPLE_AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
    "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
    "x-amz-decoded-content-length;x-amz-storage-class,"
    "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
)
AWS_EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_EXAMPLE_CHUNKS = [
    (65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
    (1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
    (0, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
]


def aws_example_body(corrupt: bool = False) -> bytes:
    body = b""
    for size, signature in AWS_EXAMPLE_CHUNKS:
        data = b"a" * size
        if corrupt and size == 1024:
            data = b"b" + data[1:]
        body += f"{size:x};chunk-signature={signature}\r\n".encode() + data + (b"\r\n" if size else b"")
    return body + b"\r\n"


async def test_signed_streaming_chunks_verify_against_the_aws_documentation_example() -> None:
    auth = parse_header_auth(AWS_EXAMPLE_AUTHORIZATION, AWS_EXAMPLE_HEADERS)
    canonical = canonical_request(auth, "PUT", "/examplebucket/chunkObject.txt", "", list(AWS_EXAMPLE_HEADERS.items()))
    assert signature_for(auth, AWS_EXAMPLE_SECRET, canonical) == auth.signature

    async def decoded(body: bytes) -> bytes:
        async def pieces() -> Any:
            for start in range(0, len(body), 999):  # boundaries fall anywhere, as on a socket
                yield body[start : start + 999]

        decoder = AwsChunkedDecoder(auth, AWS_EXAMPLE_SECRET, decoded_length=66560)
        return b"".join([piece async for piece in decoder.decode(pieces())])

    assert await decoded(aws_example_body()) == b"a" * 66560
    with pytest.raises(ToolError) as caught:
        await decoded(aws_example_body(corrupt=True))
    assert caught.value.data == {"s3_code": "SignatureDoesNotMatch"}
