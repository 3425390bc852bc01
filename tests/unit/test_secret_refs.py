"""valueFrom parsing, JSON keys and ECS's reasons (core/secret_refs.py), and SSM names (core/ssm_names.py)."""

from __future__ import annotations

import pytest

from portside.core import secret_refs, ssm_names
from portside.core.secret_refs import ParameterSource, SecretSource

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"


@pytest.mark.parametrize(
    ("value_from", "source"),
    [
        ("/app/db", ParameterSource("us-east-1", "/app/db")),
        ("plain", ParameterSource("us-east-1", "plain")),
        ("arn:aws:ssm:eu-west-1:123456789012:parameter/app/db", ParameterSource("eu-west-1", "arn:aws:ssm:eu-west-1:123456789012:parameter/app/db")),
        (ARN, SecretSource("eu-west-1", ARN, None, None, None)),
        (f"{ARN}:password::", SecretSource("eu-west-1", ARN, "password", None, None)),
        (f"{ARN}::AWSPREVIOUS:", SecretSource("eu-west-1", ARN, None, "AWSPREVIOUS", None)),
        (f"{ARN}:k:s:v-1", SecretSource("eu-west-1", ARN, "k", "s", "v-1")),
    ],
)
def test_value_from_names_its_source(value_from: str, source: object) -> None:
    assert secret_refs.parse_value_from(value_from, "us-east-1") == source


@pytest.mark.parametrize("value_from", ["arn:aws:secretsmanager:r:1:secret", "arn:aws:secretsmanager:r:1:other:x", f"{ARN}:a:b:c:d"])
def test_a_malformed_secret_arn_is_refused_naming_the_rule(value_from: str) -> None:
    with pytest.raises(ValueError, match="is not a Secrets Manager secret ARN"):
        secret_refs.parse_value_from(value_from, "us-east-1")


def test_json_keys_give_strings_as_they_are_and_other_values_as_json() -> None:
    document = '{"password": "p", "port": 5432, "nested": {"a": 1}}'
    assert secret_refs.json_value(document, "password") == "p"
    assert secret_refs.json_value(document, "port") == "5432"
    assert secret_refs.json_value(document, "nested") == '{"a": 1}'
    for text, key in ((document, "user"), ("not json", "password"), ('["password"]', "password")):
        with pytest.raises(ValueError, match=f"did not contain json key {key}"):
            secret_refs.json_value(text, key)


def test_uses_secrets_looks_at_every_container() -> None:
    assert not secret_refs.uses_secrets({"containerDefinitions": [{"name": "a"}, {"name": "b", "secrets": []}]})
    assert secret_refs.uses_secrets({"containerDefinitions": [{"name": "a"}, {"name": "b", "secrets": [{"name": "X"}]}]})


@pytest.mark.parametrize("name", ["db", "/app/db/password", "a.b-c_d", "/" + "/".join("x" * 15), "/app/aws-thing"])
def test_names_aws_accepts(name: str) -> None:
    ssm_names.check_name(name)


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("aws-thing", ssm_names.NAME_RULE),
        ("/Ssm/x", ssm_names.NAME_RULE),
        ("has space", ssm_names.NAME_RULE),
        ("/trailing/", ssm_names.NAME_RULE),
        ("/double//slash", ssm_names.NAME_RULE),
        ("app/db", ssm_names.QUALIFIED_RULE),
        ("/" + "/".join("x" * 16), ssm_names.LEVELS_RULE),
    ],
)
def test_names_aws_refuses(name: str, rule: str) -> None:
    with pytest.raises(ValueError) as info:
        ssm_names.check_name(name)
    assert str(info.value) == rule


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("/a/b", ssm_names.ParameterRef(None, "/a/b", None)),
        ("/a/b:3", ssm_names.ParameterRef(None, "/a/b", 3)),
        ("arn:aws:ssm:eu-west-1:1:parameter/a/b", ssm_names.ParameterRef("eu-west-1", "/a/b", None)),
        ("arn:aws:ssm:eu-west-1:1:parameter/top:2", ssm_names.ParameterRef("eu-west-1", "top", 2)),
    ],
)
def test_parameter_references(text: str, ref: ssm_names.ParameterRef) -> None:
    assert ssm_names.parse_reference(text) == ref


@pytest.mark.parametrize("text", ["/a/b:label", "arn:aws:s3:::bucket/x", "arn:aws:ssm:r:1:document/x"])
def test_references_that_cannot_be_resolved_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        ssm_names.parse_reference(text)


def test_in_path_one_level_or_recursive() -> None:
    assert ssm_names.in_path("/a/b", "/a", recursive=False)
    assert not ssm_names.in_path("/a/b/c", "/a", recursive=False)
    assert ssm_names.in_path("/a/b/c", "/a/", recursive=True)
    assert not ssm_names.in_path("/ab", "/a", recursive=True)
