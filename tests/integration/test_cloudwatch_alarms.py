"""CloudWatch metric alarms against a real server: boto3 (its default Smithy RPC v2 CBOR) and the
AWS CLI (query protocol). Data comes in through PutMetricData at one-second resolution; the
server's alarm loop runs every second (``--scaling-period 1``), so 10-second alarm periods settle
within seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.server import PortsideProcess
from tests.support.waiting import eventually

REGION = "us-east-1"
NAMESPACE = "Portside/AlarmTest"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortsideProcess]:
    process = PortsideProcess(tmp_path_factory.mktemp("alarms"), "--scaling-period", "1")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def cw(server: PortsideProcess) -> Any:
    return server.client("cloudwatch")


def cli(server: PortsideProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret",
           "AWS_DEFAULT_REGION": REGION, "AWS_PAGER": ""}
    return subprocess.run(
        [sys.executable, "-m", "awscli", "cloudwatch", *args, "--endpoint-url", server.endpoint, "--output", "json"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )


def alarm_params(name: str, metric: str, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "AlarmName": name, "Namespace": NAMESPACE, "MetricName": metric, "Statistic": "Maximum", "Period": 10,
        "EvaluationPeriods": 1, "Threshold": 50.0, "ComparisonOperator": "GreaterThanThreshold",
        "Dimensions": [{"Name": "Service", "Value": "web"}],
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def feed(cw: Any, metric: str, value: float) -> None:
    cw.put_metric_data(Namespace=NAMESPACE, MetricData=[{
        "MetricName": metric, "Dimensions": [{"Name": "Service", "Value": "web"}], "Value": value, "StorageResolution": 1,
    }])


def state(cw: Any, name: str) -> str:
    return cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"]


def feed_until(cw: Any, metric: str, value: float, name: str, wanted: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        feed(cw, metric, value)
        alarm = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
        return alarm if alarm["StateValue"] == wanted else None

    return eventually(check, timeout=60, interval=1, what=f"{name} in {wanted}")


def test_an_alarm_follows_its_metric_and_keeps_a_history(cw: Any) -> None:
    metric, name = f"Load{uuid.uuid4().hex[:6]}", f"high-load-{uuid.uuid4().hex[:6]}"
    cw.put_metric_alarm(**alarm_params(name, metric, AlarmActions=["arn:aws:sns:us-east-1:000000000000:pager"],
                                       AlarmDescription="load above 50"))
    alarm = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    assert alarm["AlarmArn"] == f"arn:aws:cloudwatch:{REGION}:000000000000:alarm:{name}"
    assert alarm["StateValue"] == "INSUFFICIENT_DATA"
    assert alarm["StateReason"] == "Unchecked: Initial alarm creation"
    assert alarm["AlarmDescription"] == "load above 50" and alarm["Threshold"] == 50.0
    assert alarm["Dimensions"] == [{"Name": "Service", "Value": "web"}]

    alarm = feed_until(cw, metric, 80.0, name, "ALARM")
    assert alarm["StateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints [80.0 (")
    data = json.loads(alarm["StateReasonData"])
    assert data["statistic"] == "Maximum" and data["period"] == 10 and data["recentDatapoints"] == [80.0]

    alarm = feed_until(cw, metric, 10.0, name, "OK")
    assert "was not greater than the threshold (50.0)" in alarm["StateReason"]

    history = cw.describe_alarm_history(AlarmName=name)["AlarmHistoryItems"]
    kinds = [(h["HistoryItemType"], h["HistorySummary"]) for h in history]
    assert ("ConfigurationUpdate", f'Alarm "{name}" created') in kinds
    assert ("StateUpdate", "Alarm updated from INSUFFICIENT_DATA to ALARM") in kinds
    assert ("StateUpdate", "Alarm updated from ALARM to OK") in kinds
    # the SNS action is not pretended: the history says it was not executed
    actions = cw.describe_alarm_history(AlarmName=name, HistoryItemType="Action")["AlarmHistoryItems"]
    assert actions and actions[0]["HistorySummary"].startswith("Failed to execute action arn:aws:sns:")
    assert all(h["Timestamp"].tzinfo is not None for h in history)
    newest_first = [h["Timestamp"] for h in history]
    assert newest_first == sorted(newest_first, reverse=True)
    oldest_first = cw.describe_alarm_history(AlarmName=name, ScanBy="TimestampAscending")["AlarmHistoryItems"]
    assert oldest_first[0]["HistoryItemType"] == "ConfigurationUpdate"


def test_missing_data_treated_as_breaching_alarms_without_data(cw: Any) -> None:
    name = f"silent-{uuid.uuid4().hex[:6]}"
    cw.put_metric_alarm(**alarm_params(name, f"Never{uuid.uuid4().hex[:6]}", TreatMissingData="breaching"))
    eventually(lambda: state(cw, name) == "ALARM", timeout=60, what="breaching alarm without data")
    reason = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateReason"]
    assert "treated as [Breaching]" in reason


def test_set_alarm_state_and_actions_switches(cw: Any) -> None:
    name = f"manual-{uuid.uuid4().hex[:6]}"
    # no data and missing data ignored: the loop keeps whatever state is set
    cw.put_metric_alarm(**alarm_params(name, f"Manual{uuid.uuid4().hex[:6]}", Period=3600, TreatMissingData="ignore"))
    cw.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="testing", StateReasonData='{"why": "test"}')
    alarm = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    assert (alarm["StateValue"], alarm["StateReason"]) == ("ALARM", "testing")
    assert json.loads(alarm["StateReasonData"]) == {"why": "test"}
    with pytest.raises(ClientError) as caught:
        cw.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="x", StateReasonData="{not json")
    assert caught.value.response["Error"]["Code"] == "InvalidFormat"
    assert state(cw, name) == "ALARM"  # the refused request changed nothing
    with pytest.raises(ClientError) as caught:
        cw.set_alarm_state(AlarmName=name + "-nope", StateValue="OK", StateReason="x")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFound"

    cw.disable_alarm_actions(AlarmNames=[name])
    assert cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["ActionsEnabled"] is False
    cw.enable_alarm_actions(AlarmNames=[name])
    assert cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["ActionsEnabled"] is True
    with pytest.raises(ClientError) as caught:
        cw.disable_alarm_actions(AlarmNames=[name, name + "-nope"])
    assert caught.value.response["Error"]["Code"] == "ResourceNotFound"
    assert cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["ActionsEnabled"] is True


def test_describe_filters_and_pages(cw: Any) -> None:
    prefix = f"page-{uuid.uuid4().hex[:6]}-"
    metric = f"Paged{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}{i}" for i in range(5)]
    for i, name in enumerate(names):
        actions = ["arn:aws:sns:us-east-1:000000000000:ops"] if i % 2 else []
        cw.put_metric_alarm(**alarm_params(name, metric, Period=3600, AlarmActions=actions))
    seen, token = [], None
    while True:
        page = cw.describe_alarms(AlarmNamePrefix=prefix, MaxRecords=2, **({"NextToken": token} if token else {}))
        assert len(page["MetricAlarms"]) <= 2
        seen += [a["AlarmName"] for a in page["MetricAlarms"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == names
    with_action = cw.describe_alarms(AlarmNamePrefix=prefix, ActionPrefix="arn:aws:sns:us-east-1:000000000000:o")
    assert [a["AlarmName"] for a in with_action["MetricAlarms"]] == names[1::2]
    assert cw.describe_alarms(AlarmNamePrefix=prefix, StateValue="ALARM")["MetricAlarms"] == []
    for_metric = cw.describe_alarms_for_metric(MetricName=metric, Namespace=NAMESPACE,
                                               Dimensions=[{"Name": "Service", "Value": "web"}])
    assert sorted(a["AlarmName"] for a in for_metric["MetricAlarms"]) == names
    assert cw.describe_alarms_for_metric(MetricName=metric, Namespace=NAMESPACE,
                                         Dimensions=[{"Name": "Service", "Value": "web"}], Statistic="Sum")["MetricAlarms"] == []
    assert cw.describe_alarms_for_metric(MetricName=metric, Namespace=NAMESPACE)["MetricAlarms"] == []  # dimensions differ
    with pytest.raises(ClientError) as caught:
        cw.describe_alarms(AlarmNamePrefix=prefix, NextToken="garbage")
    assert caught.value.response["Error"]["Code"] == "InvalidNextToken"

    with pytest.raises(ClientError) as caught:
        cw.delete_alarms(AlarmNames=[names[0], prefix + "missing"])
    assert caught.value.response["Error"]["Code"] == "ResourceNotFound"
    assert len(cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]) == 5  # nothing deleted
    cw.delete_alarms(AlarmNames=names)
    assert cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"] == []


@pytest.mark.parametrize(
    "change,code,words",
    [
        ({"Period": 45}, "InvalidParameterValue", "Period"),
        ({"EvaluationPeriods": 2, "DatapointsToAlarm": 3}, "InvalidParameterValue", "DatapointsToAlarm"),
        ({"TreatMissingData": "sometimes"}, "InvalidParameterValue", "TreatMissingData"),
        ({"ComparisonOperator": "GreaterThanUpperThreshold"}, "InvalidParameterValue", "anomaly detection"),
        ({"Statistic": None, "ExtendedStatistic": "tm99"}, "InvalidParameterValue", "ExtendedStatistic"),
        ({"Statistic": None, "ExtendedStatistic": "p99", "EvaluateLowSampleCountPercentile": "maybe"},
         "InvalidParameterValue", "EvaluateLowSampleCountPercentile"),
        ({"ExtendedStatistic": "p99"}, "InvalidParameterCombination", "Statistic"),
        ({"Statistic": None}, "MissingParameter", "Statistic"),
        ({"Threshold": None}, "MissingParameter", "Threshold"),
        ({"Period": 86400, "EvaluationPeriods": 2}, "InvalidParameterValue", "EvaluationPeriods"),
        ({"AlarmActions": ["not-an-arn"]}, "InvalidParameterValue", "AlarmActions"),
    ],
)
def test_put_metric_alarm_refuses_what_it_cannot_do(cw: Any, change: dict[str, Any], code: str, words: str) -> None:
    name = f"bad-{uuid.uuid4().hex[:6]}"
    params = {k: v for k, v in {**alarm_params(name, "Bad"), **change}.items() if v is not None}
    with pytest.raises(ClientError) as caught:
        cw.put_metric_alarm(**params)
    assert caught.value.response["Error"]["Code"] == code
    assert words in caught.value.response["Error"]["Message"]
    assert cw.describe_alarms(AlarmNames=[name])["MetricAlarms"] == []


def test_the_aws_cli_drives_alarms(server: PortsideProcess) -> None:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    put = cli(server, "put-metric-alarm", "--alarm-name", name, "--namespace", NAMESPACE, "--metric-name", "CliLoad",
              "--statistic", "Average", "--period", "60", "--evaluation-periods", "3", "--datapoints-to-alarm", "2",
              "--threshold", "5", "--comparison-operator", "LessThanThreshold", "--treat-missing-data", "notBreaching")
    assert put.returncode == 0, put.stderr
    described = cli(server, "describe-alarms", "--alarm-names", name)
    assert described.returncode == 0, described.stderr
    alarm = json.loads(described.stdout)["MetricAlarms"][0]
    assert (alarm["DatapointsToAlarm"], alarm["TreatMissingData"], alarm["ComparisonOperator"]) == (2, "notBreaching", "LessThanThreshold")
    bad = cli(server, "put-metric-alarm", "--alarm-name", name, "--namespace", NAMESPACE, "--metric-name", "CliLoad",
              "--statistic", "Average", "--period", "7", "--evaluation-periods", "1", "--threshold", "5",
              "--comparison-operator", "LessThanThreshold")
    assert bad.returncode != 0 and "InvalidParameterValue" in bad.stderr and "Period" in bad.stderr
    assert cli(server, "set-alarm-state", "--alarm-name", name, "--state-value", "ALARM", "--state-reason", "cli").returncode == 0
    history = json.loads(cli(server, "describe-alarm-history", "--alarm-name", name).stdout)["AlarmHistoryItems"]
    manual = [h for h in history if h["HistoryItemType"] == "StateUpdate"
              and json.loads(h["HistoryData"])["newState"] == {"stateValue": "ALARM", "stateReason": "cli"}]
    assert len(manual) == 1  # (the loop may move it back to OK since: no data is notBreaching)
    assert cli(server, "delete-alarms", "--alarm-names", name).returncode == 0
    assert json.loads(cli(server, "describe-alarms", "--alarm-names", name).stdout)["MetricAlarms"] == []


def test_alarms_are_region_scoped(server: PortsideProcess) -> None:
    east, west = server.client("cloudwatch"), server.client("cloudwatch", region="eu-west-1")
    name = f"regional-{uuid.uuid4().hex[:6]}"
    west.put_metric_alarm(**alarm_params(name, "Regional", Period=3600))
    assert east.describe_alarms(AlarmNames=[name])["MetricAlarms"] == []
    assert west.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["AlarmArn"].startswith("arn:aws:cloudwatch:eu-west-1:")



def test_history_by_time_and_the_combinations_refused(cw: Any) -> None:
    name = f"dated-{uuid.uuid4().hex[:6]}"
    cw.put_metric_alarm(**alarm_params(name, "Dated", Period=3600))
    created = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["AlarmConfigurationUpdatedTimestamp"]
    before, after = created - timedelta(hours=1), created + timedelta(hours=1)
    assert len(cw.describe_alarm_history(AlarmName=name, StartDate=before, EndDate=after)["AlarmHistoryItems"]) == 1
    assert cw.describe_alarm_history(AlarmName=name, StartDate=after, EndDate=after + timedelta(hours=1))["AlarmHistoryItems"] == []
    assert cw.describe_alarm_history(AlarmName=name, AlarmTypes=["CompositeAlarm"])["AlarmHistoryItems"] == []
    composite = cw.describe_alarms(AlarmNames=[name], AlarmTypes=["CompositeAlarm"])
    assert composite["MetricAlarms"] == [] and composite["CompositeAlarms"] == []
    for call, code in (
        (lambda: cw.describe_alarms(AlarmNames=[name], AlarmNamePrefix="dated-"), "InvalidParameterCombination"),
        (lambda: cw.describe_alarms(ChildrenOfAlarmName=name), "InvalidParameterValue"),
    ):
        with pytest.raises(ClientError) as caught:
            call()
        assert caught.value.response["Error"]["Code"] == code


def test_a_percentile_alarm_reads_the_distribution_of_the_values_sent(cw: Any) -> None:
    metric, name = f"Latency{uuid.uuid4().hex[:6]}", f"p90-{uuid.uuid4().hex[:6]}"
    cw.put_metric_alarm(**alarm_params(name, metric, Statistic=None, ExtendedStatistic="p90", Threshold=0.5))
    assert cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["ExtendedStatistic"] == "p90"
    assert [a["AlarmName"] for a in cw.describe_alarms_for_metric(
        MetricName=metric, Namespace=NAMESPACE, ExtendedStatistic="p90",
        Dimensions=[{"Name": "Service", "Value": "web"}])["MetricAlarms"]] == [name]

    def send(fast: float, slow: float) -> None:  # 85 fast responses and 15 slow ones each time
        cw.put_metric_data(Namespace=NAMESPACE, MetricData=[{
            "MetricName": metric, "Dimensions": [{"Name": "Service", "Value": "web"}], "Values": [fast, slow],
            "Counts": [85.0, 15.0], "StorageResolution": 1, "Unit": "Seconds"}])

    def reaches(fast: float, slow: float, wanted: str) -> bool:
        send(fast, slow)
        return state(cw, name) == wanted

    # the average of 0.1 and 2.0 weighted 85:15 is under 0.5 ... but p90 is 2.0
    eventually(lambda: reaches(0.1, 2.0, "ALARM"), timeout=60, interval=1, what="p90 alarm in ALARM")
    eventually(lambda: reaches(0.1, 0.2, "OK"), timeout=60, interval=1, what="p90 alarm back to OK")


def test_alarm_tags(cw: Any) -> None:
    name = f"tagged-{uuid.uuid4().hex[:6]}"
    cw.put_metric_alarm(**alarm_params(name, "Tagged", Period=3600, Tags=[{"Key": "team", "Value": "web"}]))
    arn = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["AlarmArn"]
    assert cw.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "team", "Value": "web"}]
    cw.tag_resource(ResourceARN=arn, Tags=[{"Key": "team", "Value": "api"}, {"Key": "tier", "Value": "1"}])
    # an update keeps the tags and ignores those it names, as AWS documents
    cw.put_metric_alarm(**alarm_params(name, "Tagged", Period=3600, Tags=[{"Key": "other", "Value": "x"}]))
    assert cw.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "team", "Value": "api"}, {"Key": "tier", "Value": "1"}]
    cw.untag_resource(ResourceARN=arn, TagKeys=["team", "absent"])
    assert cw.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "tier", "Value": "1"}]
    for call, code in (
        (lambda: cw.tag_resource(ResourceARN=arn, Tags=[{"Key": "aws:owner", "Value": "me"}]), "InvalidParameterValue"),
        (lambda: cw.tag_resource(ResourceARN=arn, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)]), "InvalidParameterValue"),
        (lambda: cw.list_tags_for_resource(ResourceARN=arn + "-gone"), "ResourceNotFoundException"),
        (lambda: cw.list_tags_for_resource(ResourceARN="arn:aws:sns:us-east-1:000000000000:topic"), "InvalidParameterValue"),
    ):
        with pytest.raises(ClientError) as caught:
            call()
        assert caught.value.response["Error"]["Code"] == code
    assert cw.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "tier", "Value": "1"}]  # refusals changed nothing


def test_alarms_over_json_1_0(server: PortsideProcess, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A botocore whose CloudWatch model speaks JSON 1.0 (``X-Amz-Target: GraniteServiceVersion20100801.*``)."""
    model = botocore.loaders.Loader().load_service_model("cloudwatch", "service-2")
    model["metadata"]["protocol"] = "json"
    model["metadata"]["protocols"] = ["json"]
    root = tmp_path_factory.mktemp("botocore-json")
    version_dir = root / "cloudwatch" / model["metadata"]["apiVersion"]
    version_dir.mkdir(parents=True)
    (version_dir / "service-2.json").write_text(json.dumps(model))
    session = botocore.session.get_session()
    session.get_component("data_loader").search_paths.insert(0, str(root))
    cw = boto3.Session(botocore_session=session).client(
        "cloudwatch", endpoint_url=server.endpoint, region_name=REGION, aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret", config=Config(retries={"max_attempts": 1}),
    )
    assert cw.meta.service_model.protocol == "json"
    name = f"json-{uuid.uuid4().hex[:6]}"
    cw.put_metric_alarm(**alarm_params(name, "Json", Period=3600, TreatMissingData="ignore"))
    alarm = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    assert alarm["StateValue"] == "INSUFFICIENT_DATA" and alarm["StateUpdatedTimestamp"].tzinfo is not None
    cw.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="json")
    assert cw.describe_alarm_history(AlarmName=name, HistoryItemType="StateUpdate")["AlarmHistoryItems"][0][
        "HistorySummary"] == "Alarm updated from INSUFFICIENT_DATA to OK"
    with pytest.raises(ClientError) as caught:
        cw.delete_alarms(AlarmNames=[name + "-nope"])
    assert caught.value.response["Error"]["Code"] == "ResourceNotFound"
    cw.delete_alarms(AlarmNames=[name])
