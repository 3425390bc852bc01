"""The ECS action table: X-Amz-Target action name -> control-plane operation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portside.control import (
    account_settings,
    agent_protocol,
    attributes,
    cluster_settings,
    clusters,
    instance_state,
    service_deployments,
    services,
    tags,
    task_definitions,
    tasks,
)
from portside.control.plane import ControlPlane

TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
SERVICE = "ecs"

Operation = Callable[[ControlPlane, str, dict[str, Any]], dict[str, Any]]

OPERATIONS: dict[str, Operation] = {
    "RegisterTaskDefinition": task_definitions.register,
    "DescribeTaskDefinition": task_definitions.describe,
    "DeregisterTaskDefinition": task_definitions.deregister,
    "ListTaskDefinitions": task_definitions.list_definitions,
    "ListTaskDefinitionFamilies": task_definitions.list_families,
    "DeleteTaskDefinitions": task_definitions.delete_definitions,
    "CreateCluster": clusters.create_cluster,
    "DescribeClusters": clusters.describe_clusters,
    "ListClusters": clusters.list_clusters,
    "DeleteCluster": clusters.delete_cluster,
    "UpdateCluster": cluster_settings.update_cluster,
    "UpdateClusterSettings": cluster_settings.update_cluster_settings,
    "PutClusterCapacityProviders": cluster_settings.put_cluster_capacity_providers,
    "ListContainerInstances": clusters.list_container_instances,
    "DescribeContainerInstances": clusters.describe_container_instances,
    "RegisterContainerInstance": agent_protocol.register_container_instance,
    "UpdateContainerInstancesState": instance_state.update_container_instances_state,
    "DeregisterContainerInstance": instance_state.deregister_container_instance,
    "PutAttributes": attributes.put_attributes,
    "DeleteAttributes": attributes.delete_attributes,
    "ListAttributes": attributes.list_attributes,
    "RunTask": tasks.run_task,
    "StartTask": tasks.start_task,
    "StopTask": tasks.stop_task,
    "DescribeTasks": tasks.describe_tasks,
    "ListTasks": tasks.list_tasks,
    "CreateService": services.create_service,
    "UpdateService": services.update_service,
    "DeleteService": services.delete_service,
    "DescribeServices": services.describe_services,
    "ListServices": services.list_services,
    "ListServiceDeployments": service_deployments.list_service_deployments,
    "DescribeServiceDeployments": service_deployments.describe_service_deployments,
    "PutAccountSetting": account_settings.put_account_setting,
    "PutAccountSettingDefault": account_settings.put_account_setting_default,
    "DeleteAccountSetting": account_settings.delete_account_setting,
    "ListAccountSettings": account_settings.list_account_settings,
    "TagResource": tags.tag_resource,
    "UntagResource": tags.untag_resource,
    "ListTagsForResource": tags.list_tags_for_resource,
}
