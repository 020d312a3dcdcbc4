"""Routing policy (pool.plan, pure): which upstreams a request may try, in which order."""

from __future__ import annotations

import pytest

from foundry_gateway.config import Route, Routing, Upstream
from foundry_gateway.upstreams.pool import Member, NoRoute, plan, prompt_chars


class _Listing:
    def __init__(self, models: tuple[str, ...]) -> None:
        self.known = models


def local(name: str, *models: str, in_flight: int = 0, up: bool = True) -> Member:
    m = Member(Upstream(name, f"http://{name}:9180"), client=None, models=_Listing(models))
    m.in_flight, m.up = in_flight, up
    return m


def cloud(name: str, *models: str, up: bool = True) -> Member:
    m = Member(Upstream(name, f"https://{name}", kind="cloud", models=models), client=None,
               models=None)
    m.up = up
    return m


def names(attempts) -> list[tuple[str, str]]:
    return [(a.member.name, a.model) for a in attempts]


def test_one_upstream_without_routing_takes_everything_unfiltered() -> None:
    only = local("foundry")  # lists nothing: the request still goes there, as always
    assert names(plan("whatever", Routing(), [only], fleet=False)) == [("foundry", "whatever")]


def test_only_members_with_the_model_loaded_least_busy_first() -> None:
    a, b, c = local("a", "m", in_flight=2), local("b", "m", in_flight=0), local("c", "x")
    assert names(plan("m", Routing(), [a, b, c])) == [("b", "m"), ("a", "m")]


def test_ties_go_to_the_member_that_finished_longest_ago() -> None:
    a, b = local("a", "m"), local("b", "m")
    a.served, b.served = 5, 3
    assert names(plan("m", Routing(), [a, b]))[0] == ("b", "m")


def test_out_of_rotation_members_are_not_tried() -> None:
    a, b = local("a", "m", up=False), local("b", "m")
    assert names(plan("m", Routing(), [a, b])) == [("b", "m")]


def test_unknown_model_is_404_with_the_hint() -> None:
    with pytest.raises(NoRoute) as caught:
        plan("nope", Routing(), [local("a", "m")])
    assert caught.value.status == 404
    assert str(caught.value) == ("model 'nope' is not loaded on any upstream; "
                                 "GET /v1/models lists what is")


def test_all_down_is_503_naming_each_and_why() -> None:
    a = local("a", "m", up=False)
    a.reason = "connect"
    with pytest.raises(NoRoute) as caught:
        plan("m", Routing(), [a, local("b", "x")])
    assert caught.value.status == 503
    assert str(caught.value) == "no upstream can serve 'm' now; out of rotation: a (connect)"


def test_a_request_without_model_is_400() -> None:
    with pytest.raises(NoRoute) as caught:
        plan(None, Routing(), [local("a", "m"), local("b", "m")])
    assert caught.value.status == 400


def test_cloud_fallback_comes_after_every_local_member() -> None:
    routing = Routing(cloud_fallback="gpt")
    a, b, sky = local("a", "m"), local("b", "m", in_flight=1), cloud("sky", "gpt")
    assert names(plan("m", routing, [sky, a, b])) == [("a", "m"), ("b", "m"), ("sky", "gpt")]
    a.up = b.up = False
    assert names(plan("m", routing, [a, b, sky])) == [("sky", "gpt")]


def test_fallback_is_not_for_cloud_models_or_routes() -> None:
    routing = Routing(routes=(Route("r", ("m",)),), cloud_fallback="gpt")
    members = [local("a", "m"), cloud("sky", "gpt", "gpt-big")]
    assert names(plan("gpt-big", routing, members)) == [("sky", "gpt-big")]
    assert names(plan("r", routing, members)) == [("a", "m")]


def test_without_a_fallback_policy_the_cloud_is_never_used_for_local_models() -> None:
    with pytest.raises(NoRoute):
        plan("m", Routing(), [local("a", "m", up=False), cloud("sky", "gpt")])


def test_local_only_model_never_falls_back() -> None:
    routing = Routing(cloud_fallback="gpt", local_only=("m",))
    with pytest.raises(NoRoute) as caught:
        plan("m", routing, [local("a", "m", up=False), cloud("sky", "gpt")])
    assert caught.value.status == 503
    assert "local-only" in str(caught.value) and "never sent to a cloud" in str(caught.value)


def test_a_route_tries_its_models_in_order_then_the_cloud() -> None:
    routing = Routing(routes=(Route("code", ("coder", "m", "gpt")),))
    members = [local("a", "m"), local("b", "coder"), cloud("sky", "gpt")]
    assert names(plan("code", routing, members)) == [("b", "coder"), ("a", "m"), ("sky", "gpt")]


def test_a_local_only_route_skips_its_cloud_models_whatever_fails() -> None:
    routing = Routing(routes=(Route("private", ("m", "gpt"), local_only=True),), cloud_fallback="gpt")
    members = [local("a", "m", up=False), cloud("sky", "gpt")]
    with pytest.raises(NoRoute) as caught:
        plan("private", routing, members)
    assert caught.value.status == 503 and "local-only" in str(caught.value)
    members[0].up = True
    assert names(plan("private", routing, members)) == [("a", "m")]


def test_cloud_models_are_routable_by_their_own_id() -> None:
    assert names(plan("gpt", Routing(), [local("a", "m"), cloud("sky", "gpt")])) == [("sky", "gpt")]


def test_a_prompt_over_the_local_window_goes_to_the_cloud_first() -> None:
    routing = Routing(cloud_fallback="gpt", context_tokens=(("m", 1000),))
    members = [local("a", "m"), cloud("sky", "gpt")]
    assert names(plan("m", routing, members, prompt_chars=3000)) == [("a", "m"), ("sky", "gpt")]
    assert names(plan("m", routing, members, prompt_chars=4004 * 4)) == [("sky", "gpt"), ("a", "m")]


def test_a_long_prompt_still_goes_local_when_the_model_is_local_only() -> None:
    routing = Routing(cloud_fallback="gpt", context_tokens=(("m", 1000),), local_only=("m",))
    members = [local("a", "m"), cloud("sky", "gpt")]
    assert names(plan("m", routing, members, prompt_chars=10**6)) == [("a", "m")]


def test_prompt_chars_counts_text_contents_only() -> None:
    doc = {"messages": [{"role": "user", "content": "abcd"},
                        {"role": "user", "content": [{"type": "text", "text": "xy"},
                                                     {"type": "image_url", "image_url": "u"}]},
                        "junk", {"content": None}]}
    assert prompt_chars(doc) == 6
    assert prompt_chars(None) == 0
