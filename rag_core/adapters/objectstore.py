"""Object store over a local folder or S3, through pyarrow's filesystem layer.

Keys are `/`-separated paths relative to the store root; this adapter gives them no meaning
(`domain.layout` says what lives where).

On an S3 bucket with versioning enabled, `delete` leaves the older versions and a delete
marker behind; `purge` removes every version, for erasure.
"""

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime | None


class ObjectStore:
    def __init__(
        self, uri: str, *, s3_endpoint_url: str | None = None, s3_region: str = "us-east-1"
    ):
        self.uri = uri.rstrip("/")
        self._s3_endpoint_url, self._s3_region = s3_endpoint_url, s3_region
        if self.uri.startswith("s3://"):
            bucket_and_prefix = self.uri.removeprefix("s3://")
            self._fs: pafs.FileSystem = pafs.S3FileSystem(
                endpoint_override=s3_endpoint_url,
                region=s3_region,
                scheme="http"
                if s3_endpoint_url and s3_endpoint_url.startswith("http:")
                else "https",
            )
            self._root = bucket_and_prefix
        else:
            root = Path(self.uri).expanduser().resolve()
            root.mkdir(parents=True, exist_ok=True)
            self._fs = pafs.LocalFileSystem()
            self._root = str(root)
            self.uri = root.as_uri()

    def _path(self, key: str) -> str:
        return f"{self._root}/{key.lstrip('/')}"

    def uri_for(self, key: str) -> str:
        return f"{self.uri}/{key.lstrip('/')}"

    def put(self, key: str, data: bytes) -> None:
        """Write atomically enough for readers: write a sibling, then move into place."""
        path = self._path(key)
        self._fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        if isinstance(self._fs, pafs.LocalFileSystem):
            staging = f"{path}.partial"
            with self._fs.open_output_stream(staging) as out:
                out.write(data)
            self._fs.move(staging, path)
        else:
            with self._fs.open_output_stream(path) as out:
                out.write(data)

    def get(self, key: str) -> bytes:
        with self._fs.open_input_stream(self._path(key)) as stream:
            return bytes(stream.read())

    def exists(self, key: str) -> bool:
        return self._fs.get_file_info(self._path(key)).type == pafs.FileType.File

    def delete(self, key: str) -> None:
        """Delete an object; on a folder, also the folders it leaves empty (their names are
        ids, and an erased document's id must not linger as a folder name)."""
        if self.exists(key):
            self._fs.delete_file(self._path(key))
        if isinstance(self._fs, pafs.LocalFileSystem):
            root = Path(self._root)
            folder = Path(self._path(key)).parent
            while folder != root and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
                folder = folder.parent

    def list(self, prefix: str) -> list[StoredObject]:
        """Files under `prefix`, sorted by key; an absent prefix lists nothing."""
        selector = pafs.FileSelector(self._path(prefix), recursive=True, allow_not_found=True)
        start = len(self._root) + 1
        objects = [
            StoredObject(key=info.path[start:], size=info.size or 0, modified=info.mtime)
            for info in self._fs.get_file_info(selector)
            if info.type == pafs.FileType.File and not info.path.endswith(".partial")
        ]
        return sorted(objects, key=lambda obj: obj.key)

    def purge(self, key: str, *, folder: bool = False) -> int:
        """Delete the object at `key`, or with `folder` every object under `key/`, every
        stored version included; returns how many objects or versions were deleted. Exact by
        default: on S3 a key can be a file and a folder's name at once, and erasing the file
        must not take the folder's documents with it."""
        if not self._keeps_versions:
            if folder:
                objects = [obj.key for obj in self.list(key)]
            else:
                objects = [key] if self.exists(key) else []
            for found in objects:
                self.delete(found)
            return len(objects)
        versions = self._versions(key, folder)
        for path, version_id in versions:
            self._s3.delete_object(Bucket=self._bucket, Key=path, VersionId=version_id)
        return len(versions)

    def stored_versions(self, key: str, *, folder: bool = False) -> int:
        """Objects and versions (delete markers included) kept at `key`, or under `key/`."""
        if not self._keeps_versions:
            return len(self.list(key)) if folder else int(self.exists(key))
        return len(self._versions(key, folder))

    @cached_property
    def _s3(self) -> Any:
        import boto3

        # A session of its own reads the credentials the environment has now; boto3's default
        # session keeps whatever the first client in the process found.
        session = boto3.session.Session()
        return session.client("s3", endpoint_url=self._s3_endpoint_url, region_name=self._s3_region)

    @property
    def _bucket(self) -> str:
        return self._root.split("/", 1)[0]

    @property
    def _keeps_versions(self) -> bool:
        """An S3 bucket whose versioning is enabled now or ever was (suspended buckets keep
        the versions they have)."""
        if isinstance(self._fs, pafs.LocalFileSystem):
            return False
        return "Status" in self._s3.get_bucket_versioning(Bucket=self._bucket)

    def _versions(self, key: str, folder: bool) -> tuple[tuple[str, str], ...]:
        path = self._path(key).split("/", 1)[1]
        prefix = f"{path}/" if folder else path
        pages = self._s3.get_paginator("list_object_versions").paginate(
            Bucket=self._bucket, Prefix=prefix
        )
        return tuple(
            (entry["Key"], entry["VersionId"])
            for page in pages
            for entry in (*page.get("Versions", []), *page.get("DeleteMarkers", []))
            if folder or entry["Key"] == path
        )
