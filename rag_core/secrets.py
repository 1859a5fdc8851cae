"""Secrets by reference. A secret setting is given directly, from a file named by
`RAG_<NAME>_FILE` (a mounted Kubernetes or Docker secret), or as a reference
`aws-sm://<secret id>[#<json key>]` resolved from AWS Secrets Manager at start-up. Values
are `SecretStr`: masked in reprs, logs and the settings dump; errors name the reference,
never the value."""

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

AWS_PREFIX = "aws-sm://"


def read_secret_files(
    data: dict[str, Any], names: Iterable[str], environ: Mapping[str, str] = os.environ
) -> dict[str, Any]:
    """`data` with each secret that is not set directly read from its `RAG_<NAME>_FILE`."""
    for name in names:
        path = environ.get(f"RAG_{name.upper()}_FILE")
        if path and data.get(name) is None:
            try:
                data[name] = Path(path).read_text().strip()
            except OSError as exc:
                raise ValueError(f"RAG_{name.upper()}_FILE: cannot read {path}") from exc
    return data


def resolve_reference(value: str) -> str:
    """The secret an `aws-sm://` reference names; any other value as it is."""
    if not value.startswith(AWS_PREFIX):
        return value
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    secret_id, _, json_key = value.removeprefix(AWS_PREFIX).partition("#")
    try:
        client = boto3.session.Session().client(
            "secretsmanager", endpoint_url=os.environ.get("AWS_ENDPOINT_URL")
        )
        secret: str = client.get_secret_value(SecretId=secret_id)["SecretString"]
        return str(json.loads(secret)[json_key]) if json_key else secret
    except (BotoCoreError, ClientError, KeyError, ValueError) as exc:
        raise ValueError(f"secret {value} could not be resolved ({type(exc).__name__})") from None
