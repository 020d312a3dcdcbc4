"""The chat-path checks against a fake Foundry Local + Open WebUI: each broken
link fails its own check with the right fix, and later checks that cannot mean
anything are skipped, not failed."""

from __future__ import annotations

import httpx

from stackctl.checks import chat as smoke_checks
from stackctl.checks import runner
from stackctl.checks.runner import FAIL, OK, SKIP
from tests.unit.checks.fakes import CONTAINER_OPENAI, MODEL, sse, view


def run(ctx):
    return {r.name: r for r in runner.run_checks(smoke_checks.CHECKS, ctx).results}


def test_healthy_chat_path_passes_every_check(make_ctx, fake):
    res = run(make_ctx())
    assert {n: r.status for n, r in res.items()} == {n: OK for n in res}
    assert "reused" not in res["sign-in"].detail and "signed in" in res["sign-in"].detail
    assert "finish_reason=stop" in res["chat-stream"].detail
    assert ("52180", "/catalogs/local/v1/chat/completions") in fake.calls


def test_foundry_not_found_fails_first_and_skips_what_needs_it(make_ctx):
    res = run(make_ctx(reason="nothing answers at http://127.0.0.1:52180"))
    assert res["foundry"].status == FAIL
    assert "nothing answers" in res["foundry"].detail and "./stack up" in res["foundry"].fix
    assert res["open-webui"].status == OK and res["sign-in"].status == OK
    for name in ("connection", "models", "chat", "chat-stream"):
        assert res[name].status == SKIP and "Foundry Local not found" in res[name].detail


def test_no_model_loaded_fails_foundry_and_skips_chat_but_still_checks_the_connection(make_ctx):
    res = run(make_ctx(found=view(models=())))
    assert res["foundry"].status == FAIL and "no chat model loaded" in res["foundry"].detail
    assert "load" in res["foundry"].fix
    assert res["connection"].status == OK, res["connection"]  # the service root still matches
    assert res["chat"].status == SKIP and "no chat model" in res["chat"].detail


def test_model_unloaded_between_discovery_and_completion_names_the_model(make_ctx, fake):
    fake.routes[("52180", "/catalogs/local/v1/chat/completions")] = lambda r: httpx.Response(
        400, json={"error": {"message": "Model not loaded", "type": "invalid_request_error"}})
    res = run(make_ctx())
    assert res["foundry"].status == FAIL
    assert "HTTP 400 Model not loaded" in res["foundry"].detail and MODEL in res["foundry"].detail


def test_open_webui_down_skips_everything_that_needs_it(make_ctx, fake):
    del fake.routes[("3000", "/health")]
    res = run(make_ctx())
    assert res["open-webui"].status == FAIL and "./stack logs open-webui" in res["open-webui"].fix
    assert all(res[n].status == SKIP for n in ("sign-in", "connection", "models", "chat", "chat-stream"))


def test_token_is_reused_across_runs_so_the_rate_limit_is_never_hit(make_ctx, fake):
    for _ in range(20):
        res = run(make_ctx())
        assert res["sign-in"].status == OK
    assert fake.signins == 1
    assert "reused the cached token" in res["sign-in"].detail


def test_rate_limited_sign_in_says_to_wait(make_ctx, fake):
    fake.routes[("3000", "/api/v1/auths/signin")] = lambda r: httpx.Response(429, json={})
    res = run(make_ctx())
    assert res["sign-in"].status == FAIL and "rate limited" in res["sign-in"].detail
    assert "wait 3 minutes" in res["sign-in"].fix
    assert res["chat"].status == SKIP and "no admin sign-in" in res["chat"].detail


def test_stored_connection_on_a_wrong_port_fails_with_the_reconcile_fix(make_ctx, fake):
    fake.stored_url = "http://host.docker.internal:1/catalogs/local/v1"
    r = run(make_ctx())["connection"]
    assert r.status == FAIL
    assert "http://host.docker.internal:1/catalogs/local/v1" in r.detail and CONTAINER_OPENAI in r.detail
    assert "POST /openai/verify of it fails: HTTP 500" in r.detail
    assert r.fix.startswith("`./stack up` repoints Open WebUI")


def test_right_url_that_open_webui_cannot_reach_fails_with_the_reachability_fix(make_ctx, fake):
    fake.routes[("3000", "/openai/verify")] = lambda r: httpx.Response(500, json={"detail": "Server Connection Error"})
    r = run(make_ctx())["connection"]
    assert r.status == FAIL and "cannot reach Foundry Local" in r.detail and "Server Connection Error" in r.detail
    assert "./stack doctor" in r.fix


def test_verify_body_is_connection_zero_as_stored():
    url, body = smoke_checks.verify_body({"OPENAI_API_BASE_URLS": ["http://a/v1", "http://b/v1"],
                                          "OPENAI_API_KEYS": ["k0", "k1"],
                                          "OPENAI_API_CONFIGS": {"0": {"enable": True}, "1": {}}})
    assert url == "http://a/v1" and body == {"url": "http://a/v1", "key": "k0", "config": {"enable": True}}
    assert smoke_checks.verify_body({}) == ("", {})


def test_model_missing_from_open_webui_fails_models(make_ctx, fake):
    fake.routes[("3000", "/api/models")] = lambda r: httpx.Response(200, json={"data": []})
    r = run(make_ctx())["models"]
    assert r.status == FAIL and MODEL in r.detail and "offers: nothing" in r.detail


def test_stream_cut_before_its_end_fails_the_stream_check(make_ctx, fake):
    fake.routes[("3000", "/api/chat/completions")] = lambda r: httpx.Response(
        200, content=sse("hel", "lo", finish=None, done=False), headers={"content-type": "text/event-stream"})
    r = run(make_ctx())["chat-stream"]
    assert r.status == FAIL and "without a finish_reason" in r.detail


def test_chat_error_through_open_webui_is_shown_with_its_message(make_ctx, fake):
    fake.routes[("3000", "/api/chat/completions")] = lambda r: httpx.Response(
        500, json={"detail": "Open WebUI: Server Connection Error"})
    res = run(make_ctx())
    assert res["chat"].status == FAIL and "HTTP 500 Open WebUI: Server Connection Error" in res["chat"].detail
    assert res["chat-stream"].status == FAIL
