"""SSM Parameter Store through boto3 and the AWS CLI against a real server (docs/secrets.md)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.server import PortsideProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    process = PortsideProcess(tmp_path_factory.mktemp("ssm"), "--firewall", "off")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def ssm(server: PortsideProcess) -> Any:
    return server.client("ssm")


@pytest.fixture
def root() -> str:
    return f"/t{uuid.uuid4().hex[:10]}"


def _error(call: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def test_put_get_overwrite_and_versions(ssm: Any, root: str) -> None:
    name = f"{root}/db/url"
    created = ssm.put_parameter(Name=name, Value="one", Type="String", Description="the url")
    assert (created["Version"], created["Tier"]) == (1, "Standard")
    code, message = _error(lambda: ssm.put_parameter(Name=name, Value="two", Type="String"))
    assert code == "ParameterAlreadyExists"
    assert "set the overwrite option" in message
    assert ssm.put_parameter(Name=name, Value="two", Overwrite=True)["Version"] == 2  # the type is kept
    parameter = ssm.get_parameter(Name=name)["Parameter"]
    assert (parameter["Value"], parameter["Version"], parameter["Type"]) == ("two", 2, "String")
    assert parameter["ARN"] == f"arn:aws:ssm:us-east-1:000000000000:parameter{name}"
    first = ssm.get_parameter(Name=f"{name}:1")["Parameter"]
    assert (first["Value"], first["Selector"]) == ("one", ":1")
    assert ssm.get_parameter(Name=parameter["ARN"])["Parameter"]["Value"] == "two"
    code, _ = _error(lambda: ssm.get_parameter(Name=f"{name}:9"))
    assert code == "ParameterVersionNotFound"
    described = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])["Parameters"]
    assert [(p["Name"], p["Version"], p["Description"]) for p in described] == [(name, 2, "the url")]


def test_secure_string_needs_with_decryption_to_show_its_value(ssm: Any, root: str) -> None:
    name = f"{root}/password"
    ssm.put_parameter(Name=name, Value="hunter2", Type="SecureString")
    hidden = ssm.get_parameter(Name=name)["Parameter"]
    assert hidden["Type"] == "SecureString"
    assert hidden["Value"] != "hunter2"
    assert b"hunter2" not in base64.b64decode(hidden["Value"])  # ciphertext, as AWS shows a KMS blob
    assert ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"] == "hunter2"
    [listed] = ssm.get_parameters_by_path(Path=root)["Parameters"]
    assert listed["Value"] == hidden["Value"]
    [meta] = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])["Parameters"]
    assert meta["KeyId"] == "alias/aws/ssm"


def test_get_parameters_lists_the_invalid_ones(ssm: Any, root: str) -> None:
    ssm.put_parameter(Name=f"{root}/a", Value="A", Type="StringList")
    answer = ssm.get_parameters(Names=[f"{root}/a", f"{root}/missing"])
    assert [(p["Name"], p["Value"], p["Type"]) for p in answer["Parameters"]] == [(f"{root}/a", "A", "StringList")]
    assert answer["InvalidParameters"] == [f"{root}/missing"]
    code, message = _error(lambda: ssm.get_parameter(Name=f"{root}/missing"))
    assert code == "ParameterNotFound"


def test_get_parameters_by_path_one_level_or_recursive_in_pages(ssm: Any, root: str) -> None:
    names = [f"{root}/app/k{i}" for i in range(5)] + [f"{root}/app/deep/x", f"{root}/apple"]
    for name in names:
        ssm.put_parameter(Name=name, Value=name[-2:], Type="String")
    pages = list(ssm.get_paginator("get_parameters_by_path").paginate(Path=f"{root}/app", PaginationConfig={"PageSize": 2}))
    assert len(pages) == 3
    assert [p["Name"] for page in pages for p in page["Parameters"]] == sorted(names[:5])
    recursive = ssm.get_parameters_by_path(Path=f"{root}/app/", Recursive=True)
    assert sorted(p["Name"] for p in recursive["Parameters"]) == sorted(names[:6])
    code, _ = _error(lambda: ssm.get_parameters_by_path(Path="no-slash"))
    assert code == "ValidationException"
    code, _ = _error(lambda: ssm.get_parameters_by_path(Path=f"{root}/app", NextToken="!!"))
    assert code == "InvalidNextToken"


def test_delete_parameter_and_parameters(ssm: Any, root: str) -> None:
    for name in ("a", "b", "c"):
        ssm.put_parameter(Name=f"{root}/{name}", Value=name, Type="String")
    ssm.delete_parameter(Name=f"{root}/a")
    code, _ = _error(lambda: ssm.delete_parameter(Name=f"{root}/a"))
    assert code == "ParameterNotFound"
    answer = ssm.delete_parameters(Names=[f"{root}/b", f"{root}/c", f"{root}/a"])
    assert (answer["DeletedParameters"], answer["InvalidParameters"]) == ([f"{root}/b", f"{root}/c"], [f"{root}/a"])
    assert ssm.get_parameters_by_path(Path=root, Recursive=True)["Parameters"] == []


@pytest.mark.parametrize(
    ("name", "code", "words"),
    [
        ("awsname", "ValidationException", 'can\'t be prefixed with "aws" or "ssm"'),
        ("/SSM/x", "ValidationException", 'can\'t be prefixed with "aws" or "ssm"'),
        ("a/b", "ValidationException", "must be a fully qualified name"),
        ("/a b", "ValidationException", "letters, numbers and the following 3 symbols"),
        ("/" + "/".join("l" * 16), "HierarchyLevelLimitExceededException", "maximum of 15 levels"),
    ],
)
def test_names_break_aws_rules(ssm: Any, name: str, code: str, words: str) -> None:
    got, message = _error(lambda: ssm.put_parameter(Name=name, Value="v", Type="String"))
    assert (got, words in message) == (code, True)


@pytest.mark.parametrize(
    ("extra", "code", "words"),
    [
        ({"KeyId": "arn:aws:kms:us-east-1:000000000000:key/x", "Type": "SecureString"}, "ValidationException", "no KMS keys"),
        ({"Policies": '[{"Type":"Expiration"}]', "Type": "String"}, "ValidationException", "Policies"),
        ({"DataType": "aws:ec2:image", "Type": "String"}, "ValidationException", "DataType"),
        ({"AllowedPattern": "^[0-9]+$", "Type": "String"}, "ParameterPatternMismatchException", "allowedPattern"),
        ({"Type": "String", "Value": "v" * 4097}, "ValidationException", "maximum parameter value of 4096"),
        ({}, "ValidationException", "A parameter type is required"),
    ],
)
def test_what_portside_refuses_changes_nothing(ssm: Any, root: str, extra: dict[str, Any], code: str, words: str) -> None:
    request = {"Name": f"{root}/refused", "Value": "abc", **extra}
    got, message = _error(lambda: ssm.put_parameter(**request))
    assert got == code and words in message, message
    assert ssm.get_parameters(Names=[f"{root}/refused"])["InvalidParameters"] == [f"{root}/refused"]


def test_advanced_tier_holds_larger_values(ssm: Any, root: str) -> None:
    answer = ssm.put_parameter(Name=f"{root}/big", Value="v" * 5000, Type="String", Tier="Advanced")
    assert answer["Tier"] == "Advanced"
    assert ssm.get_parameter(Name=f"{root}/big")["Parameter"]["Value"] == "v" * 5000


def test_the_aws_cli_puts_and_reads_a_secure_string(server: PortsideProcess, root: str) -> None:
    def aws(*args: str) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "awscli", "ssm", *args, "--endpoint-url", server.endpoint, "--region", "us-east-1",
             "--output", "json"],
            capture_output=True, text=True, timeout=60,
            env={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "PATH": "/usr/bin:/bin", "HOME": "/tmp"},
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    assert aws("put-parameter", "--name", f"{root}/cli", "--value", "from-cli", "--type", "SecureString")["Version"] == 1
    shown = aws("get-parameter", "--name", f"{root}/cli", "--with-decryption")["Parameter"]
    assert shown["Value"] == "from-cli"
    listed = aws("get-parameters-by-path", "--path", root, "--recursive")["Parameters"]
    assert [p["Name"] for p in listed] == [f"{root}/cli"]
    aws("delete-parameter", "--name", f"{root}/cli")


def test_parameter_history_lists_every_version_in_pages(ssm: Any, root: str) -> None:
    name = f"{root}/history"
    ssm.put_parameter(Name=name, Value="v1", Type="SecureString", Description="first")
    for value in ("v2", "v3"):
        ssm.put_parameter(Name=name, Value=value, Overwrite=True)
    pages = list(ssm.get_paginator("get_parameter_history").paginate(
        Name=name, WithDecryption=True, PaginationConfig={"PageSize": 2}
    ))
    assert [[(p["Version"], p["Value"]) for p in page["Parameters"]] for page in pages] == [[(1, "v1"), (2, "v2")], [(3, "v3")]]
    hidden = ssm.get_parameter_history(Name=name)["Parameters"]
    assert all(p["Value"] not in ("v1", "v2", "v3") for p in hidden) and hidden[0]["Description"] == "first"
    code, _ = _error(lambda: ssm.get_parameter_history(Name=f"{root}/none"))
    assert code == "ParameterNotFound"


def test_tags_belong_to_the_parameter_across_versions(ssm: Any, root: str) -> None:
    name = f"{root}/tagged"
    ssm.put_parameter(Name=name, Value="a", Type="String", Tags=[{"Key": "team", "Value": "shop"}])
    ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId=name, Tags=[{"Key": "env", "Value": "prod"}])
    ssm.put_parameter(Name=name, Value="b", Overwrite=True)
    tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("env", "prod"), ("team", "shop")]
    ssm.remove_tags_from_resource(ResourceType="Parameter", ResourceId=name, TagKeys=["team"])
    assert ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"] == [{"Key": "env", "Value": "prod"}]
    code, _ = _error(lambda: ssm.put_parameter(Name=name, Value="c", Overwrite=True, Tags=[{"Key": "k", "Value": "v"}]))
    assert code == "ValidationException"
    code, _ = _error(lambda: ssm.list_tags_for_resource(ResourceType="Document", ResourceId=name))
    assert code == "InvalidResourceType"
    code, _ = _error(lambda: ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId=f"{root}/none",
                                                      Tags=[{"Key": "k", "Value": "v"}]))
    assert code == "InvalidResourceId"
