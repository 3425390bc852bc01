"""The store's SSM parameters and Secrets Manager secrets (store/secrets.py) on both backends."""

from __future__ import annotations

from portside.control.store.secrets import StoredParameter, StoredSecretVersion
from tests.support.stores import StoreFactory

REGION = "us-east-1"


def _param(name: str, version: int, value: str = "sealed") -> StoredParameter:
    return StoredParameter(name, version, {"Type": "String", "LastModifiedDate": 1.0}, value)


def test_parameters_newest_version_older_versions_and_names_by_prefix(store_at: StoreFactory) -> None:
    store = store_at()
    with store.transaction():
        for version in (1, 2, 3):
            store.put_ssm_parameter(REGION, _param("/a/x", version, f"v{version}"), keep_versions=2)
        store.put_ssm_parameter(REGION, _param("/a/y", 1), keep_versions=2)
        store.put_ssm_parameter(REGION, _param("/a%_/z", 1), keep_versions=2)  # LIKE's wildcards are plain here
        store.put_ssm_parameter(REGION, _param("/b", 1), keep_versions=2)
        store.put_ssm_parameter("eu-west-1", _param("/a/x", 1), keep_versions=2)
    newest = store.ssm_parameter(REGION, "/a/x")
    assert newest is not None and (newest.version, newest.value) == (3, "v3")
    older = store.ssm_parameter(REGION, "/a/x", 2)
    assert older is not None and older.value == "v2"
    assert store.ssm_parameter(REGION, "/a/x", 1) is None  # beyond keep_versions
    assert [p.name for p in store.ssm_parameters(REGION, "/a/")] == ["/a/x", "/a/y"]
    assert [p.name for p in store.ssm_parameters(REGION, "/a%_/")] == ["/a%_/z"]
    everything = [p.name for p in store.ssm_parameters(REGION, "/")]  # by name, in the backend's collation
    assert sorted(everything) == sorted(["/a/x", "/a/y", "/a%_/z", "/b"])
    assert [p.name for p in store.ssm_parameters(REGION, "/", after=everything[1], limit=1)] == [everything[2]]
    with store.transaction():
        assert store.delete_ssm_parameter(REGION, "/a/x")
        assert not store.delete_ssm_parameter(REGION, "/a/x")
    assert store.ssm_parameter(REGION, "/a/x") is None
    assert store.ssm_parameter("eu-west-1", "/a/x") is not None


def test_secrets_and_their_versions(store_at: StoreFactory) -> None:
    store = store_at()
    arn = "arn:aws:secretsmanager:us-east-1:0:secret:db-AbCdEf"
    with store.transaction():
        store.put_sm_secret(REGION, {"ARN": arn, "Name": "db", "CreatedDate": 1.0})
        store.put_sm_version(arn, StoredSecretVersion("v1", 1.0, ["AWSCURRENT"], "s1"))
        store.put_sm_version(arn, StoredSecretVersion("v2", 2.0, [], "s2"))
        store.set_sm_version_stages(arn, "v1", ["AWSPREVIOUS"])
    assert store.sm_secret(REGION, "db") == store.sm_secret_by_arn(arn) == {"ARN": arn, "Name": "db", "CreatedDate": 1.0}
    assert [(v.version_id, v.stages, v.value) for v in store.sm_versions(arn)] == [("v1", ["AWSPREVIOUS"], "s1"), ("v2", [], "s2")]
    with store.transaction():
        store.delete_sm_version(arn, "v2")
    assert [v.version_id for v in store.sm_versions(arn)] == ["v1"]
    assert [b["Name"] for b in store.sm_secrets(REGION)] == ["db"]
    with store.transaction():
        store.delete_sm_secret(arn)
    assert store.sm_secret(REGION, "db") is None and store.sm_versions(arn) == []
