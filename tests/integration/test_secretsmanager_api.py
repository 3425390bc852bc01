"""Secrets Manager through boto3 and the AWS CLI against a real server (docs/secrets.md)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.server import PortsideProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    process = PortsideProcess(tmp_path_factory.mktemp("secretsmanager"), "--firewall", "off")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def sm(server: PortsideProcess) -> Any:
    return server.client("secretsmanager")


@pytest.fixture
def name() -> str:
    return f"app/{uuid.uuid4().hex[:10]}"


def _error(call: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def test_create_and_read_by_name_full_and_partial_arn(sm: Any, name: str) -> None:
    created = sm.create_secret(Name=name, SecretString="s3cret", Description="db password")
    assert re.fullmatch(rf"arn:aws:secretsmanager:us-east-1:000000000000:secret:{name}-[A-Za-z0-9]{{6}}", created["ARN"])
    for secret_id in (name, created["ARN"], created["ARN"][:-7]):
        value = sm.get_secret_value(SecretId=secret_id)
        assert (value["SecretString"], value["VersionId"], value["VersionStages"]) == ("s3cret", created["VersionId"], ["AWSCURRENT"])
    described = sm.describe_secret(SecretId=name)
    assert (described["Description"], described["VersionIdsToStages"]) == ("db password", {created["VersionId"]: ["AWSCURRENT"]})
    retried = sm.create_secret(Name=name, SecretString="s3cret", ClientRequestToken=created["VersionId"])
    assert (retried["ARN"], retried["VersionId"]) == (created["ARN"], created["VersionId"])  # a retry is idempotent
    code, _ = _error(lambda: sm.create_secret(Name=name, SecretString="other", ClientRequestToken=created["VersionId"]))
    assert code == "ResourceExistsException"
    code, message = _error(lambda: sm.create_secret(Name=name, SecretString="again"))
    assert (code, message) == ("ResourceExistsException", f"The operation failed because the secret {name} already exists.")
    code, message = _error(lambda: sm.get_secret_value(SecretId=f"{name}-missing"))
    assert (code, message) == ("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")


def test_put_secret_value_moves_the_staging_labels(sm: Any, name: str) -> None:
    first = sm.create_secret(Name=name, SecretString="one")["VersionId"]
    token = str(uuid.uuid4())
    put = sm.put_secret_value(SecretId=name, SecretString="two", ClientRequestToken=token)
    assert (put["VersionId"], put["VersionStages"]) == (token, ["AWSCURRENT"])
    assert sm.put_secret_value(SecretId=name, SecretString="two", ClientRequestToken=token)["VersionId"] == token
    code, _ = _error(lambda: sm.put_secret_value(SecretId=name, SecretString="other", ClientRequestToken=token))
    assert code == "ResourceExistsException"
    sm.put_secret_value(SecretId=name, SecretString="three")
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "three"
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == "two"
    assert sm.get_secret_value(SecretId=name, VersionId=first)["SecretString"] == "one"
    assert sm.get_secret_value(SecretId=name, VersionId=first)["VersionStages"] == []
    code, _ = _error(lambda: sm.get_secret_value(SecretId=name, VersionId=first, VersionStage="AWSCURRENT"))
    assert code == "InvalidRequestException"
    code, message = _error(lambda: sm.get_secret_value(SecretId=name, VersionStage="NOPE"))
    assert code == "ResourceNotFoundException" and "staging label: NOPE" in message


def test_binary_secrets_round_trip(sm: Any, name: str) -> None:
    sm.create_secret(Name=name, SecretBinary=b"\x00\x01binary")
    assert sm.get_secret_value(SecretId=name)["SecretBinary"] == b"\x00\x01binary"
    code, _ = _error(lambda: sm.put_secret_value(SecretId=name, SecretBinary=b"x", SecretString="y"))
    assert code == "InvalidParameterException"


def test_delete_with_recovery_window_restore_and_force(sm: Any, name: str) -> None:
    arn = sm.create_secret(Name=name, SecretString="v")["ARN"]
    deleted = sm.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    described = sm.describe_secret(SecretId=arn)
    assert described["DeletedDate"] < deleted["DeletionDate"]
    assert (deleted["DeletionDate"] - described["DeletedDate"]).days == 7
    code, message = _error(lambda: sm.get_secret_value(SecretId=name))
    assert code == "InvalidRequestException" and "marked for deletion" in message
    code, _ = _error(lambda: sm.create_secret(Name=name, SecretString="new"))
    assert code == "InvalidRequestException"
    assert name not in [s["Name"] for s in sm.list_secrets()["SecretList"]]
    assert name in [s["Name"] for s in sm.list_secrets(IncludePlannedDeletion=True)["SecretList"]]
    sm.restore_secret(SecretId=name)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "v"
    sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    code, _ = _error(lambda: sm.describe_secret(SecretId=arn))
    assert code == "ResourceNotFoundException"
    again = sm.create_secret(Name=name, SecretString="v2")["ARN"]
    assert again != arn  # a new secret under the old name is another ARN, as on AWS


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        ({"RecoveryWindowInDays": 3}, "between 7 and 30 days"),
        ({"RecoveryWindowInDays": 7, "ForceDeleteWithoutRecovery": True}, "in conjunction with RecoveryWindowInDays"),
    ],
)
def test_delete_refuses_bad_windows(sm: Any, name: str, request_: dict[str, Any], words: str) -> None:
    sm.create_secret(Name=name, SecretString="v")
    code, message = _error(lambda: sm.delete_secret(SecretId=name, **request_))
    assert code == "InvalidParameterException" and words in message
    assert "DeletedDate" not in sm.describe_secret(SecretId=name)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"Name": "bad name"}, "Invalid name"),
        ({"KmsKeyId": "arn:aws:kms:us-east-1:000000000000:key/x"}, "no KMS keys"),
        ({"AddReplicaRegions": [{"Region": "eu-west-1"}]}, "AddReplicaRegions"),
        ({"SecretBinary": b"x"}, "both a binary secret value and a string"),
    ],
)
def test_create_refuses_what_it_cannot_honour(sm: Any, name: str, extra: dict[str, Any], words: str) -> None:
    request = {"Name": name, "SecretString": "v", **extra}
    code, message = _error(lambda: sm.create_secret(**request))
    assert code == "InvalidParameterException" and words in message
    code, _ = _error(lambda: sm.describe_secret(SecretId=request["Name"]))
    assert code == "ResourceNotFoundException"


def test_list_secrets_filters_and_pages(sm: Any) -> None:
    prefix = f"list{uuid.uuid4().hex[:6]}"
    for i in range(3):
        sm.create_secret(Name=f"{prefix}/s{i}", SecretString="v", Description=f"number {i}")
    pages = list(sm.get_paginator("list_secrets").paginate(
        Filters=[{"Key": "name", "Values": [prefix]}], PaginationConfig={"PageSize": 2}
    ))
    assert [len(p["SecretList"]) for p in pages] == [2, 1]
    assert [s["Name"] for p in pages for s in p["SecretList"]] == [f"{prefix}/s{i}" for i in range(3)]
    only = sm.list_secrets(Filters=[{"Key": "name", "Values": [prefix]}, {"Key": "description", "Values": ["number 1"]}])
    assert [s["Name"] for s in only["SecretList"]] == [f"{prefix}/s1"]
    code, _ = _error(lambda: sm.list_secrets(Filters=[{"Key": "tag-key", "Values": ["x"]}]))
    assert code == "InvalidParameterException"


def test_the_aws_cli_creates_and_reads_a_secret(server: PortsideProcess, name: str) -> None:
    def aws(*args: str) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "awscli", "secretsmanager", *args, "--endpoint-url", server.endpoint,
             "--region", "us-east-1", "--output", "json"],
            capture_output=True, text=True, timeout=60,
            env={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "PATH": "/usr/bin:/bin", "HOME": "/tmp"},
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    arn = aws("create-secret", "--name", name, "--secret-string", '{"user":"u","password":"p"}')["ARN"]
    assert json.loads(aws("get-secret-value", "--secret-id", arn)["SecretString"]) == {"user": "u", "password": "p"}
    aws("put-secret-value", "--secret-id", name, "--secret-string", "rotated")
    assert aws("get-secret-value", "--secret-id", name)["SecretString"] == "rotated"
    assert aws("delete-secret", "--secret-id", name, "--force-delete-without-recovery")["Name"] == name


def test_update_secret_changes_the_description_and_adds_a_current_value(sm: Any, name: str) -> None:
    first = sm.create_secret(Name=name, SecretString="one", Description="old")["VersionId"]
    answer = sm.update_secret(SecretId=name, Description="new")
    assert "VersionId" not in answer
    assert sm.describe_secret(SecretId=name)["Description"] == "new"
    assert sm.get_secret_value(SecretId=name)["VersionId"] == first
    updated = sm.update_secret(SecretId=name, SecretString="two")
    value = sm.get_secret_value(SecretId=name)
    assert (value["SecretString"], value["VersionId"]) == ("two", updated["VersionId"])
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == "one"
    code, _ = _error(lambda: sm.update_secret(SecretId=name, KmsKeyId="arn:aws:kms:us-east-1:000000000000:key/x"))
    assert code == "InvalidParameterException"
    assert sm.describe_secret(SecretId=name)["Description"] == "new"
