"""portside.core.attributes: the rules of PutAttributes, DeleteAttributes and ListAttributes.

Table tests pin every rule an item can break (and the field the message names), the limit of
custom attributes per instance, that a refused request leaves its input untouched, and that
re-registration keeps what users put. Hypothesis checks names and values against the rule
written out character class by character class.
"""

from __future__ import annotations

import copy
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portside.core.attributes import (
    MAX_CUSTOM_ATTRIBUTES,
    AttributeItem,
    apply_delete,
    apply_put,
    check_list_filter,
    is_builtin,
    keep_custom,
    list_attributes,
    parse_items,
    resolve_target,
)
from portside.errors import AttributeLimitExceededException, InvalidParameterException, NotFoundError

ARN = "arn:aws:ecs:us-east-1:000000000000:container-instance/default/" + "a" * 32
OTHER = "arn:aws:ecs:us-east-1:000000000000:container-instance/default/" + "b" * 32
BUILTIN = [{"name": "ecs.os-type", "value": "linux"}, {"name": "ecs.capability.task-eni"}]


def item(**fields: Any) -> dict[str, Any]:
    return {"name": "stack", "value": "blue", "targetId": ARN, **fields}


def put(current: dict[str, list[dict[str, str]]], *items: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    parsed = parse_items(list(items), deleting=False)
    return apply_put(current, [(resolve_target(i, current, "default"), i) for i in parsed])


# -- one item's rules


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"name": ""}, "attributes[0].name '' is invalid"),
        ({"name": "a" * 129}, "attributes[0].name 'aaaa"),
        ({"name": "stack color"}, "attributes[0].name 'stack color' is invalid"),
        ({"name": "stack:color"}, "attributes[0].name 'stack:color' is invalid"),
        ({"name": "pile@"}, "attributes[0].name 'pile@' is invalid"),
        ({"name": "café"}, "attributes[0].name 'café' is invalid"),
        ({"name": None}, "attributes[0].name (missing) is invalid"),
        ({"name": 7}, "attributes[0].name of type int is invalid"),
        ({"name": "ecs.os-type"}, "attributes[0].name 'ecs.os-type' is a built-in attribute"),
        ({"name": "ecs.capability.task-eni"}, "is a built-in attribute"),
        ({"name": "com.amazonaws.ecs.capability.docker-remote-api.1.17"}, "is a built-in attribute"),
        ({"value": ""}, "attributes[0].value '' is invalid"),
        ({"value": "v" * 129}, "attributes[0].value 'vvvv"),
        ({"value": " blue"}, "attributes[0].value ' blue' is invalid"),
        ({"value": "blue "}, "attributes[0].value 'blue ' is invalid"),
        ({"value": "blue#1"}, "attributes[0].value 'blue#1' is invalid"),
        ({"value": "blue\n"}, "attributes[0].value 'blue\\n' is invalid"),
        ({"value": 3}, "attributes[0].value of type int is invalid"),
        (
            {"targetType": "task"},
            "attributes[0].targetType 'task' is invalid: the only target type is 'container-instance'",
        ),
        ({"targetId": None}, "attributes[0].targetId is required"),
        ({"targetId": ""}, "attributes[0].targetId is required"),
        ({"targetId": "a" * 32}, "attributes[0].targetType is required when targetId"),
        (
            {"targetId": "arn:aws:ecs:us-east-1:000000000000:task/default/" + "c" * 32},
            "is not a container instance ARN",
        ),
        ({"targetId": "arn:nonsense"}, "is not a container instance ARN"),
    ],
)
def test_an_item_breaking_a_rule_is_refused_naming_field_and_rule(fields: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidParameterException) as excinfo:
        parse_items([item(**fields)], deleting=False)
    assert says in excinfo.value.message


def test_the_rule_is_spelled_out_in_the_message() -> None:
    with pytest.raises(InvalidParameterException) as excinfo:
        parse_items([item(name="a b")], deleting=False)
    assert (
        "letters, numbers, hyphens (-), underscores (_), forward slashes (/), "
        "back slashes (\\) or periods (.)" in (excinfo.value.message)
    )


def test_the_failing_item_is_named_by_its_place() -> None:
    with pytest.raises(InvalidParameterException) as excinfo:
        parse_items([item(), item(name="fine"), item(value="bad#")], deleting=False)
    assert excinfo.value.message.startswith("attributes[2].value")


@pytest.mark.parametrize(
    ("items", "says"),
    [
        ([], "attributes can not be empty"),
        (None, "attributes can not be empty"),
        ([item(name=f"n{i}") for i in range(11)], "attributes has 11 items; at most 10"),
    ],
)
def test_a_call_carries_one_to_ten_items(items: Any, says: str) -> None:
    with pytest.raises(InvalidParameterException) as excinfo:
        parse_items(items, deleting=False)
    assert says in excinfo.value.message


def test_a_deleting_request_names_the_verb_for_built_in_names() -> None:
    with pytest.raises(InvalidParameterException) as excinfo:
        parse_items([{"name": "ecs.os-type", "targetId": ARN}], deleting=True)
    assert "cannot be deleted" in excinfo.value.message


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"value": None},
        {"name": "a" * 128, "value": "v" * 128},
        {"name": "A-z_0/9\\.x", "value": "a-Z_0.9@/\\: x"},
        {"value": "two words"},
        {"targetType": "container-instance"},
        {"targetId": "a" * 32, "targetType": "container-instance"},
        {"name": "ecsy.not-reserved"},
    ],
)
def test_valid_items_pass(fields: dict[str, Any]) -> None:
    [parsed] = parse_items([item(**fields)], deleting=False)
    assert parsed.name == item(**fields)["name"] and parsed.value == item(**fields)["value"]


_NAME_CHARS = set(string.ascii_letters + string.digits + "-_/\\.")
_VALUE_CHARS = set(string.ascii_letters + string.digits + "-_.@/\\: ")


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=130))
def test_names_follow_the_documented_rule(name: str) -> None:
    ok = 1 <= len(name) <= 128 and set(name) <= _NAME_CHARS and not is_builtin(name)
    try:
        parse_items([item(name=name)], deleting=False)
    except InvalidParameterException:
        assert not ok
    else:
        assert ok


@given(st.text(alphabet=st.sampled_from(sorted(_VALUE_CHARS) + ["#", "\t", "é", "!"]), max_size=130))
def test_values_follow_the_documented_rule(value: str) -> None:
    ok = 1 <= len(value) <= 128 and set(value) <= _VALUE_CHARS and value == value.strip(" ")
    try:
        parse_items([item(value=value)], deleting=False)
    except InvalidParameterException:
        assert not ok
    else:
        assert ok


# -- targets


def test_a_target_is_found_by_arn_or_by_id() -> None:
    [by_arn, by_id] = parse_items(
        [item(), item(targetId=OTHER.rsplit("/", 1)[-1], targetType="container-instance")], deleting=False
    )
    assert resolve_target(by_arn, [OTHER, ARN], "default") == ARN
    assert resolve_target(by_id, [ARN, OTHER], "default") == OTHER


@pytest.mark.parametrize(
    "target",
    [
        "arn:aws:ecs:us-east-1:000000000000:container-instance/default/" + "c" * 32,  # unknown id
        "arn:aws:ecs:us-east-1:000000000000:container-instance/other/" + "a" * 32,  # another cluster
        "arn:aws:ecs:eu-west-1:000000000000:container-instance/default/" + "a" * 32,  # another region
    ],
)
def test_an_unknown_target_is_target_not_found(target: str) -> None:
    [parsed] = parse_items([item(targetId=target)], deleting=False)
    with pytest.raises(NotFoundError) as excinfo:
        resolve_target(parsed, [ARN], "default")
    assert excinfo.value.code == "TargetNotFoundException"
    assert (
        f"attributes[0].targetId: no container instance '{target}' in cluster 'default'"
        in excinfo.value.message
    )


def test_an_arn_is_never_matched_by_its_id_alone() -> None:
    # An ARN naming another cluster ends with the same id: only the whole ARN may match.
    other_cluster = ARN.replace("/default/", "/other/")
    parsed = AttributeItem(0, "stack", "blue", other_cluster)
    with pytest.raises(NotFoundError):
        resolve_target(parsed, [ARN], "default")


# -- putting


def test_put_adds_new_names_and_replaces_values() -> None:
    current = {ARN: [*BUILTIN, {"name": "stack", "value": "green"}]}
    before = copy.deepcopy(current)
    out = put(current, item(), item(name="tier", value=None))
    assert out == {ARN: [*BUILTIN, {"name": "stack", "value": "blue"}, {"name": "tier"}]}
    assert current == before  # the input is never changed


def test_put_without_value_drops_the_old_value() -> None:
    out = put({ARN: [{"name": "stack", "value": "green"}]}, item(value=None))
    assert out == {ARN: [{"name": "stack"}]}


def test_put_touches_only_the_instances_named() -> None:
    out = put({ARN: [], OTHER: []}, item(targetId=OTHER))
    assert out == {OTHER: [{"name": "stack", "value": "blue"}]}


def test_the_same_name_twice_on_one_instance_is_refused() -> None:
    by_id = item(targetId=ARN.rsplit("/", 1)[-1], targetType="container-instance", value="green")
    with pytest.raises(InvalidParameterException) as excinfo:
        put({ARN: []}, item(), by_id)
    assert "attributes[1] repeats attributes[0]: attribute 'stack'" in excinfo.value.message
    assert put({ARN: [], OTHER: []}, item(), item(targetId=OTHER)) == {
        ARN: [{"name": "stack", "value": "blue"}],
        OTHER: [{"name": "stack", "value": "blue"}],
    }


def test_ten_custom_attributes_fit_besides_the_built_in_ones() -> None:
    current = {ARN: [*BUILTIN, *({"name": f"c{i}", "value": "x"} for i in range(MAX_CUSTOM_ATTRIBUTES - 1))]}
    out = put(current, item())
    assert len(out[ARN]) == len(BUILTIN) + MAX_CUSTOM_ATTRIBUTES
    assert put(out, item(value="green"))[ARN][-1] == {
        "name": "stack",
        "value": "green",
    }  # replacing adds none


def test_an_eleventh_custom_attribute_is_refused() -> None:
    current = {ARN: [*BUILTIN, *({"name": f"c{i}", "value": "x"} for i in range(MAX_CUSTOM_ATTRIBUTES))]}
    before = copy.deepcopy(current)
    with pytest.raises(AttributeLimitExceededException) as excinfo:
        put(current, item())
    assert f"{'a' * 32} would have 11 custom attributes; at most 10" in excinfo.value.message
    assert excinfo.value.code == "AttributeLimitExceededException"
    assert current == before


def test_one_call_over_the_limit_is_refused_whole() -> None:
    current: dict[str, list[dict[str, str]]] = {ARN: [{"name": f"c{i}"} for i in range(5)], OTHER: []}
    items = [item(name=f"n{i}") for i in range(6)] + [item(targetId=OTHER)]
    with pytest.raises(AttributeLimitExceededException):
        put(current, *items)


# -- deleting


def delete(current: dict[str, list[dict[str, str]]], *items: dict[str, Any]) -> Any:
    parsed = parse_items(list(items), deleting=True)
    return apply_delete(current, [(resolve_target(i, current, "default"), i) for i in parsed])


def test_delete_returns_what_it_deleted_with_the_stored_value() -> None:
    current = {ARN: [*BUILTIN, {"name": "stack", "value": "blue"}, {"name": "tier"}]}
    before = copy.deepcopy(current)
    changed, deleted = delete(current, {"name": "stack", "targetId": ARN}, {"name": "tier", "targetId": ARN})
    assert changed == {ARN: BUILTIN}
    assert deleted == [(ARN, {"name": "stack", "value": "blue"}), (ARN, {"name": "tier"})]
    assert current == before


def test_deleting_an_absent_attribute_changes_nothing_and_reports_nothing() -> None:
    assert delete({ARN: list(BUILTIN)}, {"name": "stack", "targetId": ARN}) == ({}, [])


def test_delete_with_a_value_deletes_only_that_value() -> None:
    current = {ARN: [{"name": "stack", "value": "blue"}]}
    assert delete(current, {"name": "stack", "value": "blue", "targetId": ARN}) == (
        {ARN: []},
        [(ARN, {"name": "stack", "value": "blue"})],
    )
    with pytest.raises(InvalidParameterException) as excinfo:
        delete(current, {"name": "stack", "value": "green", "targetId": ARN})
    assert "attributes[0].value 'green' is not the value of attribute 'stack'" in excinfo.value.message
    assert current == {ARN: [{"name": "stack", "value": "blue"}]}


# -- listing


def test_list_shows_every_attribute_and_filters_by_name_then_value() -> None:
    instances = [
        (ARN, [*BUILTIN, {"name": "stack", "value": "blue"}]),
        (OTHER, [{"name": "stack", "value": "green"}]),
    ]
    assert list_attributes(instances, None, None) == [
        {"name": "ecs.os-type", "targetId": ARN, "value": "linux"},
        {"name": "ecs.capability.task-eni", "targetId": ARN},
        {"name": "stack", "targetId": ARN, "value": "blue"},
        {"name": "stack", "targetId": OTHER, "value": "green"},
    ]
    assert list_attributes(instances, "stack", "green") == [
        {"name": "stack", "targetId": OTHER, "value": "green"}
    ]
    assert list_attributes(instances, "ecs.capability.task-eni", None) == [
        {"name": "ecs.capability.task-eni", "targetId": ARN}
    ]
    assert list_attributes(instances, "ecs.capability.task-eni", "") == []


def test_a_value_filter_needs_a_name() -> None:
    check_list_filter("stack", "blue")
    check_list_filter("stack", None)
    with pytest.raises(InvalidParameterException) as excinfo:
        check_list_filter(None, "blue")
    assert "attributeValue requires attributeName" in excinfo.value.message


# -- re-registration


def test_re_registration_refreshes_built_in_attributes_and_keeps_custom_ones() -> None:
    previous = [{"name": "ecs.os-type", "value": "linux"}, {"name": "ecs.gone"},
                {"name": "stack", "value": "blue"},
                {"name": "tier"}]  # fmt: skip
    registered = [{"name": "ecs.os-type", "value": "linux"}, {"name": "ecs.capability.new"}]
    assert keep_custom(registered, previous) == [
        *registered,
        {"name": "stack", "value": "blue"},
        {"name": "tier"},
    ]
    assert keep_custom(registered, []) == registered
