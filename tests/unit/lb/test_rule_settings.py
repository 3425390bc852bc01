"""portside.core.lb.rule_settings: Conditions and Actions from ELBv2 params.

Both condition forms (legacy ``Values`` and the ``*Config`` members) are converted and checked
with AWS's limits and messages; every action type is converted or refused. A Hypothesis test
feeds valid random rules through ``listener_rule_from_params`` and ``compile_rules`` and checks
that a request built to satisfy the rule is routed to it.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portside.core.lb.action_settings import actions_from_params
from portside.core.lb.conditions import compile_rules
from portside.core.lb.errors import ElbError
from portside.core.lb.model import DEFAULT_RULE_PRIORITY, Action, Condition, WeightedTargetGroup
from portside.core.lb.rule_settings import conditions_from_params, listener_rule_from_params

TG = "arn:aws:elasticloadbalancing:local:000000000000:targetgroup/web/0123456789abcdef"
TG2 = TG.replace("web", "api")
FORWARD = [{"Type": "forward", "TargetGroupArn": TG}]


def refused(fn: Any, *args: Any, **kwargs: Any) -> ElbError:
    with pytest.raises(ElbError) as info:
        fn(*args, **kwargs)
    return info.value


# ------------------------------------------------------------------------------------------
# conditions


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"Field": "host-header", "Values": ["*.example.com"]}, Condition("host-header", ("*.example.com",))),
        (
            {"Field": "host-header", "HostHeaderConfig": {"Values": ["a.example.com", "b.example.org"]}},
            Condition("host-header", ("a.example.com", "b.example.org")),
        ),
        ({"Field": "path-pattern", "Values": ["/img/*"]}, Condition("path-pattern", ("/img/*",))),
        (
            {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/a", "/b?c"]}},
            Condition("path-pattern", ("/a", "/b?c")),
        ),
        (
            {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/a&amp;b"]}},
            Condition("path-pattern", ("/a&b",)),
        ),
        (
            {
                "Field": "http-header",
                "HttpHeaderConfig": {"HttpHeaderName": "User-Agent", "Values": ["*Mobile*"]},
            },
            Condition("http-header", ("*Mobile*",), header_name="User-Agent"),
        ),
        (
            {
                "Field": "http-request-method",
                "HttpRequestMethodConfig": {"Values": ["GET", "HEAD", "PURGE_ALL"]},
            },
            Condition("http-request-method", ("GET", "HEAD", "PURGE_ALL")),
        ),
        (
            {
                "Field": "query-string",
                "QueryStringConfig": {"Values": [{"Key": "version", "Value": "v1"}, {"Value": "*x*"}]},
            },
            Condition("query-string", query_pairs=(("version", "v1"), (None, "*x*"))),
        ),
        (
            {"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.0/8", "2001:db8::/32"]}},
            Condition("source-ip", ("10.0.0.0/8", "2001:db8::/32")),
        ),
        ({"PathPatternConfig": {"Values": ["/x"]}}, Condition("path-pattern", ("/x",))),  # Field inferred
    ],
)
def test_condition_forms(item: dict[str, Any], expected: Condition) -> None:
    assert conditions_from_params([item]) == (expected,)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "A rule must have at least one condition"),
        (
            [{"Field": "cookie", "Values": ["a"]}],
            "Condition field 'cookie' must be one of '[http-header, http-request-method, host-header, path-pattern, query-string, source-ip]'",
        ),
        ([{}], "A condition field must be specified"),
        (
            [{"Field": "http-header", "Values": ["a"]}],
            "The 'Values' field is not compatible with 'http-header'",
        ),
        (
            [{"Field": "path-pattern", "Values": ["/a"], "PathPatternConfig": {"Values": ["/b"]}}],
            "You cannot provide both Values and 'PathPatternConfig' for a condition of type 'path-pattern'",
        ),
        (
            [{"Field": "host-header", "Values": ["a.example.com", "b.example.com"]}],
            "The 'host-header' field contains too many values; the limit is '1'",
        ),
        (
            [{"Field": "path-pattern", "PathPatternConfig": {"Values": []}}],
            "A condition value must be specified",
        ),
        ([{"Field": "path-pattern", "Values": [""]}], "A condition value must be specified"),
        (
            [{"Field": "path-pattern", "HostHeaderConfig": {"Values": ["a.b.c"]}}],
            "A 'HostHeaderConfig' cannot be specified with 'path-pattern'",
        ),
        (
            [{"Field": "host-header", "Values": ["a" * 125 + ".com"]}],
            "The 'host-header' value is too long; the limit is '128'",
        ),
        (
            [{"Field": "path-pattern", "Values": ["/" + "a" * 128]}],
            "The 'path-pattern' value is too long; the limit is '128'",
        ),
        ([{"Field": "http-header"}], "A 'HttpHeaderConfig' must be specified with 'http-header'"),
        (
            [{"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "x" * 41, "Values": ["a"]}}],
            "The 'HttpHeaderName' value is too long; the limit is '40'",
        ),
        (
            [{"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-A", "Values": ["a" * 129]}}],
            "The 'http-header' value is too long; the limit is '128'",
        ),
        (
            [{"Field": "http-header", "HttpHeaderConfig": {"Values": ["a"]}}],
            "A 'HttpHeaderName' must be specified with 'http-header'",
        ),
        (
            [{"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["get"]}}],
            "The 'http-request-method' value is invalid; the allowed characters are A-Z, hyphen and underscore",
        ),
        (
            [{"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["A" * 41]}}],
            "The 'http-request-method' value is too long; the limit is '40'",
        ),
        (
            [{"Field": "http-request-method"}],
            "A 'HttpRequestMethodConfig' must be specified with 'http-request-method'",
        ),
        (
            [{"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "a"}]}}],
            "A 'Value' must be specified in 'QueryStringKeyValuePair'",
        ),
        (
            [{"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "k" * 129, "Value": "v"}]}}],
            "The 'Key' value is too long; the limit is '128'",
        ),
        (
            [{"Field": "query-string", "QueryStringConfig": {"Values": [{"Value": "v" * 129}]}}],
            "The 'Value' value is too long; the limit is '128'",
        ),
        (
            [{"Field": "query-string", "QueryStringConfig": {"Values": []}}],
            "A 'query-string' value must be specified",
        ),
        ([{"Field": "query-string"}], "A 'QueryStringConfig' must be specified with 'query-string'"),
        ([{"Field": "source-ip", "SourceIpConfig": {"Values": []}}], "A 'source-ip' value must be specified"),
        ([{"Field": "source-ip"}], "A 'SourceIpConfig' must be specified with 'source-ip'"),
        (
            [{"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.1"]}}],
            "The 'source-ip' value '10.0.0.1' is not a valid CIDR block",
        ),
        (
            [{"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.0/33"]}}],
            "The 'source-ip' value '10.0.0.0/33' is not a valid CIDR block",
        ),
        (
            [{"Field": "source-ip", "SourceIpConfig": {"Values": ["255.255.255.255/32"]}}],
            "The 'source-ip' value '255.255.255.255/32' is not allowed",
        ),
        (
            [{"Field": "path-pattern", "Values": ["/a"]}, {"Field": "path-pattern", "Values": ["/b"]}],
            "A rule can only have one 'path-pattern' condition",
        ),
        (
            [
                {
                    "Field": "path-pattern",
                    "PathPatternConfig": {"Values": ["/a", "/b", "/c", "/d", "/e", "/f"]},
                }
            ],
            "A rule can only have '5' condition values",
        ),
        (
            [
                {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/a", "/b", "/c"]}},
                {
                    "Field": "http-request-method",
                    "HttpRequestMethodConfig": {"Values": ["GET", "PUT", "POST"]},
                },
            ],
            "A rule can only have '5' condition values",
        ),
        (
            [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*/*/*", "/?/?/?"]}}],
            "A rule can only have '5' wildcards",
        ),
    ],
)
def test_condition_refusals(items: list[dict[str, Any]], message: str) -> None:
    err = refused(conditions_from_params, items)
    assert (err.code, err.message) == ("ValidationError", message)


@pytest.mark.parametrize(
    "host", ["example.com", "*.example.com", "api-?.example.co", "a.b.c.d.org", "*.*", "EXAMPLE.COM"]
)
def test_valid_host_values(host: str) -> None:
    assert conditions_from_params([{"Field": "host-header", "Values": [host]}])[0].values == (host,)


@pytest.mark.parametrize(
    "host", ["localhost", "example.com1", "example.", "exa_mple.com", "example.com:8080", "ex ample.com"]
)
def test_invalid_host_values(host: str) -> None:
    err = refused(conditions_from_params, [{"Field": "host-header", "Values": [host]}])
    assert err.code == "ValidationError" and f"'{host}' is invalid" in err.message


@pytest.mark.parametrize("path", ["/a%20b", "/a b", "/a#b", "/a?b=c;d", "/é"])
def test_invalid_path_values(path: str) -> None:
    err = refused(conditions_from_params, [{"Field": "path-pattern", "Values": [path]}])
    assert "is invalid; the allowed characters are" in err.message


def test_valid_path_characters() -> None:
    value = "/AZaz09_-.$/~\"'@:+&*?"
    assert conditions_from_params([{"Field": "path-pattern", "Values": [value]}])[0].values == (value,)


def test_headers_and_query_conditions_may_repeat() -> None:
    conds = conditions_from_params(
        [
            {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-A", "Values": ["1"]}},
            {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-B", "Values": ["2"]}},
            {"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "a", "Value": "1"}]}},
            {"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "b", "Value": "2"}]}},
        ]
    )
    assert [c.field for c in conds] == ["http-header", "http-header", "query-string", "query-string"]


def test_escaped_query_wildcards_do_not_count() -> None:
    conditions_from_params(
        [
            {
                "Field": "query-string",
                "QueryStringConfig": {"Values": [{"Key": "a", "Value": "\\*\\*\\*\\*\\*\\*"}]},
            }
        ]
    )


def test_host_header_cannot_be_an_http_header_condition_and_regex_is_refused() -> None:
    err = refused(
        conditions_from_params,
        [{"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "Host", "Values": ["a"]}}],
    )
    assert err.code == "ValidationError" and "host" in err.message
    err = refused(
        conditions_from_params, [{"Field": "path-pattern", "PathPatternConfig": {"RegexValues": ["^/a$"]}}]
    )
    assert err.code == "InvalidConfigurationRequest"
    err = refused(
        conditions_from_params,
        [{"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X(A)", "Values": ["a"]}}],
    )
    assert err.message == "The 'HttpHeaderName' value 'X(A)' is not a valid HTTP header name"


# ------------------------------------------------------------------------------------------
# actions


def test_forward_forms() -> None:
    assert actions_from_params(FORWARD) == (Action("forward", 1, (WeightedTargetGroup(TG, 1),)),)
    both = [
        {"Type": "forward", "TargetGroupArn": TG, "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": TG}]}}
    ]
    assert actions_from_params(both)[0].target_groups == (WeightedTargetGroup(TG, 1),)
    weighted = [
        {
            "Type": "forward",
            "Order": "1",
            "ForwardConfig": {
                "TargetGroups": [
                    {"TargetGroupArn": TG, "Weight": "90"},
                    {"TargetGroupArn": TG2, "Weight": 10},
                ],
                "TargetGroupStickinessConfig": {"Enabled": "true", "DurationSeconds": "3600"},
            },
        }
    ]
    assert actions_from_params(weighted) == (
        Action("forward", 1, (WeightedTargetGroup(TG, 90), WeightedTargetGroup(TG2, 10)), True, 3600),
    )
    off = [
        {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [{"TargetGroupArn": TG}],
                "TargetGroupStickinessConfig": {"Enabled": False},
            },
        }
    ]
    assert actions_from_params(off)[0].stickiness_enabled is False


@pytest.mark.parametrize(
    ("action", "code", "message"),
    [
        (
            {"Type": "forward"},
            "InvalidLoadBalancerAction",
            "For actions of type 'forward', you must specify the following fields: 'TargetGroupArn' or 'ForwardConfig'",
        ),
        (
            {
                "Type": "forward",
                "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": f"{TG}{i}"} for i in range(6)]},
            },
            "ValidationError",
            "A forward action can have at most '5' target groups",
        ),
        (
            {"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": TG, "Weight": 1000}]}},
            "ValidationError",
            (
                "1 validation error detected: Value '1000' at 'actions.1.member.forwardConfig.targetGroups.1.member.weight' "
                "failed to satisfy constraint: Member must have value less than or equal to 999"
            ),
        ),
        (
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": TG, "Weight": 0},
                        {"TargetGroupArn": TG2, "Weight": 0},
                    ]
                },
            },
            "ValidationError",
            "At least one target group in a forward action must have a weight greater than 0",
        ),
        (
            {
                "Type": "forward",
                "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": TG}, {"TargetGroupArn": TG}]},
            },
            "ValidationError",
            "A target group can be specified only once in a forward action",
        ),
        (
            {
                "Type": "forward",
                "TargetGroupArn": TG,
                "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": TG2}]},
            },
            "ValidationError",
            None,
        ),
        (
            {"Type": "forward", "ForwardConfig": {"TargetGroups": []}},
            "ValidationError",
            "A forward action must name at least one target group",
        ),
        (
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [{"TargetGroupArn": TG}],
                    "TargetGroupStickinessConfig": {"Enabled": True},
                },
            },
            "ValidationError",
            "You must specify a duration when enabling target group stickiness",
        ),
        (
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [{"TargetGroupArn": TG}],
                    "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 604801},
                },
            },
            "ValidationError",
            None,
        ),
        (
            {"Type": "authenticate-oidc"},
            "InvalidLoadBalancerAction",
            "Action type 'authenticate-oidc' is not supported by portside",
        ),
        ({"Type": "authenticate-cognito"}, "InvalidLoadBalancerAction", None),
        ({"Type": "jwt-validation"}, "InvalidLoadBalancerAction", None),
        (
            {"Type": "teleport"},
            "ValidationError",
            (
                "1 validation error detected: Value 'teleport' at 'actions.1.member.type' failed to satisfy constraint: "
                "Member must satisfy enum value set: [forward, authenticate-oidc, authenticate-cognito, redirect, "
                "fixed-response, jwt-validation]"
            ),
        ),
        ({"Type": "forward", "TargetGroupArn": TG, "Order": 0}, "ValidationError", None),
        (
            {"Type": "redirect"},
            "InvalidLoadBalancerAction",
            "For actions of type 'redirect', you must specify the following fields: 'RedirectConfig'",
        ),
        ({"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS"}}, "ValidationError", None),
        (
            {"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_307", "Protocol": "HTTPS"}},
            "ValidationError",
            None,
        ),
        (
            {"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_301"}},
            "InvalidLoadBalancerAction",
            "The redirect configuration is not valid because it creates a loop.",
        ),
        (
            {"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_301", "Query": "a=1"}},
            "InvalidLoadBalancerAction",
            "The redirect configuration is not valid because it creates a loop.",
        ),
        (
            {"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_301", "Protocol": "HTTP"}},
            "InvalidLoadBalancerAction",
            "The redirect configuration is not valid because it creates a loop.",
        ),
        (
            {"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_301", "Protocol": "ftp"}},
            "ValidationError",
            None,
        ),
        (
            {"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_301", "Port": "0"}},
            "ValidationError",
            None,
        ),
        (
            {"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_301", "Path": "new"}},
            "ValidationError",
            "The redirect path must be an absolute path starting with '/'",
        ),
        (
            {"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_301", "Host": "h" * 129}},
            "ValidationError",
            None,
        ),
        (
            {"Type": "fixed-response"},
            "InvalidLoadBalancerAction",
            "For actions of type 'fixed-response', you must specify the following fields: 'FixedResponseConfig'",
        ),
        (
            {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "302"}},
            "ValidationError",
            (
                "1 validation error detected: Value '302' at 'actions.1.member.fixedResponseConfig.statusCode' failed to "
                "satisfy constraint: Member must satisfy regular expression pattern: ^(2|4|5)\\d\\d$"
            ),
        ),
        ({"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "20"}}, "ValidationError", None),
        (
            {
                "Type": "fixed-response",
                "FixedResponseConfig": {"StatusCode": "200", "ContentType": "text/xml"},
            },
            "InvalidLoadBalancerAction",
            "The ContentType must be one of:'text/html', 'application/json', 'application/javascript', 'text/css', 'text/plain'",
        ),
        (
            {
                "Type": "fixed-response",
                "FixedResponseConfig": {"StatusCode": "200", "MessageBody": "x" * 1025},
            },
            "ValidationError",
            None,
        ),
    ],
)
def test_action_refusals(action: dict[str, Any], code: str, message: str | None) -> None:
    err = refused(actions_from_params, [action])
    assert err.code == code
    if message is not None:
        assert err.message == message


def test_redirect_conversion_and_listener_context() -> None:
    (a,) = actions_from_params(
        [
            {
                "Type": "redirect",
                "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"},
            }
        ]
    )
    assert (
        a.type,
        a.redirect_protocol,
        a.redirect_host,
        a.redirect_port,
        a.redirect_path,
        a.redirect_query,
        a.redirect_status,
    ) == (
        "redirect",
        "HTTPS",
        "#{host}",
        "443",
        "/#{path}",
        "#{query}",
        301,
    )
    (a,) = actions_from_params(
        [
            {
                "Type": "redirect",
                "RedirectConfig": {"Path": "/new/#{path}", "Query": "", "StatusCode": "HTTP_302"},
            }
        ]
    )
    assert (a.redirect_path, a.redirect_query, a.redirect_status) == ("/new/#{path}", "", 302)
    to_http = [
        {
            "Type": "redirect",
            "RedirectConfig": {"Protocol": "HTTP", "Host": "x.example.com", "StatusCode": "HTTP_301"},
        }
    ]
    assert (
        refused(actions_from_params, to_http, listener_protocol="HTTPS").message
        == "You cannot redirect HTTPS to HTTP"
    )
    same_port = [{"Type": "redirect", "RedirectConfig": {"Port": "8080", "StatusCode": "HTTP_301"}}]
    assert actions_from_params(same_port, listener_port=80)[0].redirect_port == "8080"
    assert refused(actions_from_params, same_port, listener_port=8080).message.endswith("creates a loop.")
    explicit = [
        {"Type": "redirect", "RedirectConfig": {"Protocol": "HTTP", "Port": "80", "StatusCode": "HTTP_301"}}
    ]
    assert refused(actions_from_params, explicit, listener_port=80).message.endswith("creates a loop.")
    assert actions_from_params(explicit, listener_port=8080)[0].redirect_port == "80"


def test_fixed_response_conversion() -> None:
    (a,) = actions_from_params(
        [
            {
                "Type": "fixed-response",
                "FixedResponseConfig": {
                    "StatusCode": "503",
                    "ContentType": "application/json",
                    "MessageBody": "{}",
                },
            }
        ]
    )
    assert (a.fixed_status, a.fixed_content_type, a.fixed_body) == (503, "application/json", "{}")
    (a,) = actions_from_params(
        [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404", "MessageBody": "x" * 1024}}]
    )
    assert (a.fixed_status, a.fixed_content_type, len(a.fixed_body)) == (404, None, 1024)


def test_action_count_and_target_group_existence() -> None:
    assert refused(actions_from_params, []).message == "A rule must have at least one action"
    err = refused(
        actions_from_params,
        FORWARD + [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}],
    )
    assert err.code == "InvalidLoadBalancerAction"
    err = refused(actions_from_params, FORWARD, target_group_exists=lambda arn: False)
    assert (err.code, err.message) == ("TargetGroupNotFound", f"Target groups '{TG}' not found")
    assert actions_from_params(FORWARD, target_group_exists=lambda arn: arn == TG)


# ------------------------------------------------------------------------------------------
# whole rules


def test_rule_and_default_rule() -> None:
    r = listener_rule_from_params("arn:r", "10", [{"Field": "path-pattern", "Values": ["/api/*"]}], FORWARD)
    assert (r.arn, r.priority, r.is_default, r.conditions[0].values) == ("arn:r", 10, False, ("/api/*",))
    d = listener_rule_from_params("arn:d", None, None, FORWARD, is_default=True)
    assert (d.priority, d.conditions, d.is_default) == (DEFAULT_RULE_PRIORITY, (), True)
    assert (
        refused(
            listener_rule_from_params,
            "arn:d",
            None,
            [{"Field": "path-pattern", "Values": ["/"]}],
            FORWARD,
            is_default=True,
        ).code
        == "ValidationError"
    )
    for priority in (0, 50001):
        assert (
            refused(
                listener_rule_from_params,
                "a",
                priority,
                [{"Field": "path-pattern", "Values": ["/"]}],
                FORWARD,
            ).code
            == "ValidationError"
        )
    assert (
        listener_rule_from_params("a", 50000, [{"Field": "path-pattern", "Values": ["/"]}], FORWARD).priority
        == 50000
    )


segment = st.text(alphabet="abc", min_size=1, max_size=4)


@given(segment, segment, st.sampled_from(["GET", "POST", "DELETE"]), segment, st.integers(1, 50000))
def test_valid_random_rules_route_a_matching_request(
    host: str, path: str, method: str, qv: str, priority: int
) -> None:
    conds = [
        {"Field": "host-header", "HostHeaderConfig": {"Values": [f"*.{host}.example.com"]}},
        {"Field": "path-pattern", "PathPatternConfig": {"Values": [f"/{path}/*"]}},
        {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": [method]}},
        {"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "v", "Value": qv}]}},
    ]
    r = listener_rule_from_params("r", priority, conds, FORWARD)
    d = listener_rule_from_params("d", None, None, FORWARD, is_default=True)
    compiled = compile_rules((r, d))
    hit = compiled.match(
        method, f"/{path}/x", f"v={qv.upper()}", f"www.{host.upper()}.example.com:80", {}, "10.0.0.1"
    )
    assert hit is r
    miss = compiled.match(method, f"/{path}x/x", f"v={qv}", f"www.{host}.example.com", {}, "10.0.0.1")
    assert miss is d
