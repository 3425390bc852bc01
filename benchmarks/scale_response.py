"""Time from a load step to the new copies serving, in metric periods.

A service of 1 copy behind a listener with a target tracking policy on
ALBRequestCountPerTarget (target 300 requests per target per minute, max 3
copies). A bounded load of ~25 requests/s starts at t0; the benchmark records
when the desired count first rises and when a copy other than the first one
first answers through the listener. Results are printed in seconds and in
metric periods. The reference point is AWS's own rule: a target tracking
scale-out alarm needs 3 of 3 one-minute datapoints, so ECS + ALB take at least
3 periods (3 minutes) before the new copy even starts.

    python benchmarks/scale_response.py [--period 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docker  # noqa: E402
from botocore.config import Config  # noqa: E402

from portside.images import build_busybox_web_image  # noqa: E402
from tests.integration.conftest import remove_server_containers  # noqa: E402
from tests.support.server import PortsideProcess, free_port  # noqa: E402

AWS_SCALE_OUT_DATAPOINTS = 3
STEP_TIMEOUT_S = 120


def one_step(server: PortsideProcess, image: str, name: str) -> tuple[float, float]:
    ecs = server.client()
    elb = server.client("elbv2", config=Config(parameter_validation=False))
    aas = server.client("application-autoscaling")
    lb = elb.create_load_balancer(Name=name, Scheme="internal", Subnets=["s-1"])["LoadBalancers"][0]
    tg = elb.create_target_group(
        Name=name, Protocol="HTTP", Port=80, VpcId="v", TargetType="instance", HealthCheckIntervalSeconds=5,
        HealthCheckPath="/cgi-bin/whoami",
    )["TargetGroups"][0]
    port = free_port()
    elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=port,
                        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
    td = ecs.register_task_definition(family=name, containerDefinitions=[
        {"name": "web", "image": image, "memory": 32, "portMappings": [{"containerPort": 80}]}])["taskDefinition"]
    ecs.create_service(serviceName=name, taskDefinition=td["taskDefinitionArn"], desiredCount=1, loadBalancers=[
        {"targetGroupArn": tg["TargetGroupArn"], "containerName": "web", "containerPort": 80}])
    ecs.get_waiter("services_stable").wait(services=[name], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    resource = f"service/default/{name}"
    aas.register_scalable_target(ServiceNamespace="ecs", ResourceId=resource, ScalableDimension="ecs:service:DesiredCount",
                                 MinCapacity=1, MaxCapacity=3)
    label = lb["LoadBalancerArn"].split(":loadbalancer/")[1] + "/" + tg["TargetGroupArn"].split(":")[-1]
    aas.put_scaling_policy(
        PolicyName="requests", ServiceNamespace="ecs", ResourceId=resource, ScalableDimension="ecs:service:DesiredCount",
        PolicyType="TargetTrackingScaling", TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 300.0, "ScaleOutCooldown": 0, "ScaleInCooldown": 0,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "ALBRequestCountPerTarget", "ResourceLabel": label}})
    url = f"http://127.0.0.1:{port}/cgi-bin/whoami"
    first = urllib.request.urlopen(url, timeout=5).read().split()[0]
    stop = threading.Event()
    new_copy_at: list[float] = []

    def load() -> None:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                who = urllib.request.urlopen(url, timeout=5).read().split()[0]
                if who != first and not new_copy_at:
                    new_copy_at.append(time.monotonic())
            except OSError:
                pass
            stop.wait(0.04)

    t0 = time.monotonic()
    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    desired_at = None
    while time.monotonic() - t0 < STEP_TIMEOUT_S and not new_copy_at:
        if desired_at is None and ecs.describe_services(services=[name])["services"][0]["desiredCount"] > 1:
            desired_at = time.monotonic()
        time.sleep(0.1)
    stop.set()
    worker.join()
    if not new_copy_at or desired_at is None:
        raise RuntimeError("no scale-out within the time limit")
    ecs.update_service(service=name, desiredCount=0)
    return desired_at - t0, new_copy_at[0] - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--period", type=float, default=2.0, help="--scaling-period of the server (s)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    client = docker.from_env()
    image = build_busybox_web_image(client)
    results = []
    with tempfile.TemporaryDirectory(prefix="portside-bench-") as tmp:
        server = PortsideProcess(Path(tmp) / "state", "--scaling-period", str(args.period), "--task-cleanup-wait", "0")
        server.start()
        try:
            for i in range(args.repeats):
                results.append(one_step(server, image, f"step{i}"))
        finally:
            server.stop()
            remove_server_containers(client, server)
    decided = [r[0] for r in results]
    serving = [r[1] for r in results]
    p = args.period
    print(f"load step -> new copy serving, scaling period {p:g} s, {args.repeats} steps")
    print(f"{'':28}{'median s':>10}{'periods':>10}")
    print(f"{'desired count raised':28}{statistics.median(decided):>10.2f}{statistics.median(decided) / p:>10.2f}")
    print(f"{'new copy serves':28}{statistics.median(serving):>10.2f}{statistics.median(serving) / p:>10.2f}")
    print(f"AWS target tracking needs {AWS_SCALE_OUT_DATAPOINTS} datapoints before it acts: ratio to that minimum "
          f"{statistics.median(serving) / p / AWS_SCALE_OUT_DATAPOINTS:.2f}x (new copy serving, in periods)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
