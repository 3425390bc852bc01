"""The CloudWatch Logs API on a real server, through boto3's ``logs`` client and the AWS CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.server import PortsideProcess


@pytest.fixture
def logs(portside: PortsideProcess) -> Any:
    return portside.client("logs")


def _name() -> str:
    return f"/test/{uuid.uuid4().hex[:10]}"


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _now_ms() -> int:
    return int(time.time() * 1000)


def test_groups_created_described_retained_and_deleted(logs: Any) -> None:
    name = _name()
    logs.create_log_group(logGroupName=name)
    with pytest.raises(ClientError) as exc:
        logs.create_log_group(logGroupName=name)
    assert _code(exc) == "ResourceAlreadyExistsException"
    groups = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    assert [g["logGroupName"] for g in groups] == [name]
    assert groups[0]["arn"].startswith("arn:aws:logs:us-east-1:") and groups[0]["arn"].endswith(f":log-group:{name}:*")
    assert "retentionInDays" not in groups[0]
    logs.put_retention_policy(logGroupName=name, retentionInDays=7)
    assert logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]["retentionInDays"] == 7
    with pytest.raises(ClientError) as exc:
        logs.put_retention_policy(logGroupName=name, retentionInDays=8)
    assert _code(exc) == "InvalidParameterException" and "retentionInDays" in str(exc.value)
    assert logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]["retentionInDays"] == 7
    arn = groups[0]["logGroupArn"]
    assert [g["logGroupName"] for g in logs.describe_log_groups(logGroupIdentifiers=[arn])["logGroups"]] == [name]
    assert logs.describe_log_groups(logGroupNamePrefix=name, logGroupClass="INFREQUENT_ACCESS")["logGroups"] == []
    logs.delete_retention_policy(logGroupName=name)
    assert "retentionInDays" not in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]
    logs.delete_log_group(logGroupName=name)
    assert logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"] == []
    with pytest.raises(ClientError) as exc:
        logs.delete_log_group(logGroupName=name)
    assert _code(exc) == "ResourceNotFoundException"


def test_groups_are_per_region(portside: PortsideProcess, logs: Any) -> None:
    name = _name()
    logs.create_log_group(logGroupName=name)
    other = portside.client("logs", region="eu-west-1")
    assert other.describe_log_groups(logGroupNamePrefix=name)["logGroups"] == []
    other.create_log_group(logGroupName=name)  # the same name in another region is another group


def test_bad_input_is_refused_by_name_and_changes_nothing(logs: Any) -> None:
    name = _name()
    for kwargs, field in (
        ({"logGroupName": name + ":bad"}, "logGroupName"),
        ({"logGroupName": name, "kmsKeyId": "arn:aws:kms:us-east-1:1:key/x"}, "kmsKeyId"),
        ({"logGroupName": name, "tags": {"a": "b"}}, "tags"),
    ):
        with pytest.raises(ClientError) as exc:
            logs.create_log_group(**kwargs)
        assert _code(exc) == "InvalidParameterException" and field in str(exc.value)
    assert logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"] == []
    with pytest.raises(ClientError) as exc:
        logs.create_log_stream(logGroupName=name, logStreamName="s")
    assert _code(exc) == "ResourceNotFoundException"
    logs.create_log_group(logGroupName=name)
    with pytest.raises(ClientError) as exc:
        logs.create_log_stream(logGroupName=name, logStreamName="a:b")
    assert _code(exc) == "InvalidParameterException" and "logStreamName" in str(exc.value)
    logs.create_log_stream(logGroupName=name, logStreamName="s")
    with pytest.raises(ClientError) as exc:
        logs.create_log_stream(logGroupName=name, logStreamName="s")
    assert _code(exc) == "ResourceAlreadyExistsException"
    now = _now_ms()
    with pytest.raises(ClientError) as exc:
        logs.put_log_events(logGroupName=name, logStreamName="s",
                            logEvents=[{"timestamp": now, "message": "b"}, {"timestamp": now - 5, "message": "a"}])
    assert _code(exc) == "InvalidParameterException" and "chronological" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        logs.put_log_events(logGroupName=name, logStreamName="s",
                            logEvents=[{"timestamp": now, "message": "x" * (256 * 1024)}])
    assert _code(exc) == "InvalidParameterException" and "message" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        logs.put_log_events(logGroupName=name, logStreamName="nope", logEvents=[{"timestamp": now, "message": "a"}])
    assert _code(exc) == "ResourceNotFoundException"
    for call, kwargs, field in (
        (logs.get_log_events, {"logStreamName": "s", "unmask": True}, "unmask"),
        (logs.filter_log_events, {"unmask": True}, "unmask"),
        (logs.put_log_events, {"logStreamName": "s", "logEvents": [{"timestamp": now, "message": "a"}],
                               "entity": {"keyAttributes": {"Type": "Service"}}}, "entity"),
    ):
        with pytest.raises(ClientError) as exc:
            call(logGroupName=name, **kwargs)
        assert _code(exc) == "InvalidParameterException" and field in str(exc.value)
    assert logs.get_log_events(logGroupName=name, logStreamName="s", startFromHead=True)["events"] == []
    with pytest.raises(ClientError) as exc:
        logs.get_log_events(logGroupName=name, logStreamName="s", nextToken="garbage")
    assert _code(exc) == "InvalidParameterException"


def test_streams_ordered_by_name_or_last_event(logs: Any) -> None:
    name = _name()
    logs.create_log_group(logGroupName=name)
    now = _now_ms()
    for stream, at in (("b", now - 3000), ("a", now - 1000), ("c", now - 2000)):
        logs.create_log_stream(logGroupName=name, logStreamName=stream)
        logs.put_log_events(logGroupName=name, logStreamName=stream, logEvents=[{"timestamp": at, "message": stream}])
    names = lambda **kw: [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=name, **kw)["logStreams"]]  # noqa: E731
    assert names() == ["a", "b", "c"]
    assert names(descending=True) == ["c", "b", "a"]
    assert names(orderBy="LastEventTime") == ["b", "c", "a"]
    assert names(orderBy="LastEventTime", descending=True) == ["a", "c", "b"]
    assert names(logStreamNamePrefix="b") == ["b"]
    stream = logs.describe_log_streams(logGroupName=name, logStreamNamePrefix="a")["logStreams"][0]
    assert stream["firstEventTimestamp"] == stream["lastEventTimestamp"] == now - 1000
    with pytest.raises(ClientError) as exc:
        logs.describe_log_streams(logGroupName=name, logStreamNamePrefix="a", orderBy="LastEventTime")
    assert _code(exc) == "InvalidParameterException"
    page = logs.describe_log_streams(logGroupName=name, limit=2)
    assert [s["logStreamName"] for s in page["logStreams"]] == ["a", "b"]
    rest = logs.describe_log_streams(logGroupName=name, limit=2, nextToken=page["nextToken"])
    assert [s["logStreamName"] for s in rest["logStreams"]] == ["c"] and "nextToken" not in rest


def test_get_log_events_pages_forward_and_backward_as_aws(logs: Any) -> None:
    name = _name()
    logs.create_log_group(logGroupName=name)
    logs.create_log_stream(logGroupName=name, logStreamName="s")
    now = _now_ms()
    logs.put_log_events(logGroupName=name, logStreamName="s",
                        logEvents=[{"timestamp": now - 100 + i, "message": f"line {i}"} for i in range(25)])
    messages = lambda page: [e["message"] for e in page["events"]]  # noqa: E731
    newest = logs.get_log_events(logGroupName=name, logStreamName="s", limit=10)
    assert messages(newest) == [f"line {i}" for i in range(15, 25)]
    older = logs.get_log_events(logGroupName=name, logStreamName="s", limit=10, nextToken=newest["nextBackwardToken"])
    assert messages(older) == [f"line {i}" for i in range(5, 15)]
    head = logs.get_log_events(logGroupName=name, logStreamName="s", limit=10, startFromHead=True)
    assert messages(head) == [f"line {i}" for i in range(10)]
    seen = messages(head)
    token = head["nextForwardToken"]
    for _ in range(10):  # SDKs page until the same forward token comes back
        page = logs.get_log_events(logGroupName=name, logStreamName="s", limit=10, nextToken=token)
        seen += messages(page)
        if page["nextForwardToken"] == token:
            break
        token = page["nextForwardToken"]
    assert seen == [f"line {i}" for i in range(25)]
    logs.put_log_events(logGroupName=name, logStreamName="s", logEvents=[{"timestamp": now, "message": "later"}])
    assert messages(logs.get_log_events(logGroupName=name, logStreamName="s", nextToken=token)) == ["later"]
    window = logs.get_log_events(logGroupName=name, logStreamName="s", startFromHead=True,
                                 startTime=now - 90, endTime=now - 88)
    assert messages(window) == ["line 10", "line 11"]


def test_filter_log_events_terms_phrases_and_refusals(logs: Any) -> None:
    name = _name()
    logs.create_log_group(logGroupName=name)
    now = _now_ms()
    lines = {"web/1": ["GET /a 200", "ERROR disk full", "WARN slow request"],
             "web/2": ["ERROR connection reset by peer", "GET /b 500"], "db/1": ["ERROR deadlock"]}
    for offset, (stream, messages) in enumerate(lines.items()):
        logs.create_log_stream(logGroupName=name, logStreamName=stream)
        logs.put_log_events(logGroupName=name, logStreamName=stream,
                            logEvents=[{"timestamp": now - 1000 + offset * 10 + i, "message": m} for i, m in enumerate(messages)])

    def found(**kwargs: Any) -> list[str]:
        return [e["message"] for e in logs.filter_log_events(logGroupName=name, **kwargs)["events"]]

    assert found() == lines["web/1"] + lines["web/2"] + lines["db/1"]
    assert found(filterPattern="ERROR") == ["ERROR disk full", "ERROR connection reset by peer", "ERROR deadlock"]
    assert found(filterPattern='"connection reset"') == ["ERROR connection reset by peer"]
    assert found(filterPattern="ERROR -deadlock -disk") == ["ERROR connection reset by peer"]
    assert found(filterPattern="?WARN ?500") == ["WARN slow request", "GET /b 500"]
    assert found(filterPattern="ERROR", logStreamNamePrefix="web/") == ["ERROR disk full", "ERROR connection reset by peer"]
    assert found(logStreamNames=["db/1"]) == ["ERROR deadlock"]
    assert found(startTime=now - 990, endTime=now - 989) == lines["web/2"]
    events = logs.filter_log_events(logGroupName=name)["events"]
    assert len({e["eventId"] for e in events}) == len(events) and events[0]["logStreamName"] == "web/1"
    page = logs.filter_log_events(logGroupName=name, limit=4)
    rest = logs.filter_log_events(logGroupName=name, nextToken=page["nextToken"])
    assert [e["message"] for e in page["events"] + rest["events"]] == found()
    for pattern in ('{ $.level = "ERROR" }', "[ip, user]", "%ERR.*%", '"unclosed'):
        with pytest.raises(ClientError) as exc:
            logs.filter_log_events(logGroupName=name, filterPattern=pattern)
        assert _code(exc) == "InvalidParameterException" and "filterPattern" in str(exc.value)


def test_hostile_messages_are_stored_as_text(logs: Any) -> None:
    name = _name()
    logs.create_log_group(logGroupName=name)
    logs.create_log_stream(logGroupName=name, logStreamName="s")
    messages = ["bell\x07 esc\x1b[31m red", "ünïcødé ✓"]
    logs.put_log_events(logGroupName=name, logStreamName="s",
                        logEvents=[{"timestamp": _now_ms(), "message": m} for m in messages])
    with pytest.raises(ClientError) as exc:  # the API edge refuses NUL in any JSON string: no store holds it
        logs.put_log_events(logGroupName=name, logStreamName="s", logEvents=[{"timestamp": _now_ms(), "message": "a\x00b"}])
    assert "logEvents[0].message" in str(exc.value)
    got = [e["message"] for e in logs.get_log_events(logGroupName=name, logStreamName="s", startFromHead=True)["events"]]
    assert got == messages


def test_the_aws_cli_drives_it(portside: PortsideProcess, tmp_path: Any) -> None:
    try:
        import awscli  # noqa: F401
    except ImportError:
        pytest.skip("the AWS CLI v1 is not installed")
    name = _name()
    env = {"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_DEFAULT_REGION": "us-east-1",
           "HOME": str(tmp_path), "AWS_CONFIG_FILE": str(tmp_path / "config"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"), "PATH": "/usr/bin:/bin"}

    def aws(*args: str) -> Any:
        done = subprocess.run([sys.executable, "-m", "awscli", "logs", *args, "--endpoint-url", portside.endpoint,
                               "--output", "json"], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    aws("create-log-group", "--log-group-name", name)
    aws("create-log-stream", "--log-group-name", name, "--log-stream-name", "s")
    aws("put-log-events", "--log-group-name", name, "--log-stream-name", "s",
        "--log-events", f"timestamp={_now_ms()},message=hello")
    events = aws("get-log-events", "--log-group-name", name, "--log-stream-name", "s", "--start-from-head")
    assert [e["message"] for e in events["events"]] == ["hello"]
    groups = aws("describe-log-groups", "--log-group-name-prefix", name)
    assert [g["logGroupName"] for g in groups["logGroups"]] == [name]


def test_the_server_refuses_a_negative_log_retention_naming_the_flag(tmp_path: Any) -> None:
    done = subprocess.run([sys.executable, "-m", "portside.cli.main", "server", "--state-dir", str(tmp_path),
                           "--log-retention-days", "-1"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--log-retention-days" in done.stderr
