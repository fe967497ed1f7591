"""Every pod runs non-root with nothing it does not need, and the Redis password reaches pods only
through a Secret-backed environment variable."""

from __future__ import annotations

import base64
import re

import pytest

from .chart_objects import ChartObjects
from .conftest import EVERYTHING, Render


@pytest.mark.parametrize("chart_name", ["default", "everything"])
def test_every_pod_is_non_root_with_a_read_only_root_no_capabilities_and_runtime_default_seccomp(
    chart_name: str, default_chart: ChartObjects, full_chart: ChartObjects
) -> None:
    chart = default_chart if chart_name == "default" else full_chart
    templates = list(chart.pod_templates())
    assert {t.labels["app.kubernetes.io/component"] for t in templates} >= {"redis", "worker", "test", "test-echo"}
    for template in templates:
        pod_context = template.spec["securityContext"]
        assert pod_context["runAsNonRoot"] is True, template.owner
        assert pod_context.get("runAsUser", 1) != 0, template.owner
        assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}, template.owner
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not template.spec.get(key), (template.owner, key)
        assert not any("hostPath" in volume for volume in template.spec.get("volumes", [])), template.owner
        for container in template.containers():
            context = container["securityContext"]
            where = f"{template.owner} container {container['name']}"
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert not context.get("privileged"), where
            assert context["runAsNonRoot"] is True, where


def test_user_ids_come_from_the_values_and_null_leaves_them_to_the_platform(render: Render) -> None:
    chart = render({"securityContext": {"runAsUser": 4242, "runAsGroup": None, "fsGroup": None}})
    context = chart.pod_template("Deployment/perf-meshload-worker").spec["securityContext"]
    assert context["runAsUser"] == 4242
    assert "runAsGroup" not in context and "fsGroup" not in context
    assert context["runAsNonRoot"] is True


def _generated_password(chart: ChartObjects) -> str:
    secret = chart.get("Secret", "perf-meshload-redis")
    return base64.b64decode(secret["data"]["redis-password"]).decode()


@pytest.mark.parametrize("chart_name", ["default", "everything"])
def test_the_redis_password_is_never_on_a_command_line_nor_written_in_a_pod_spec(
    chart_name: str, default_chart: ChartObjects, full_chart: ChartObjects
) -> None:
    chart = default_chart if chart_name == "default" else full_chart
    password = _generated_password(chart)
    assert re.fullmatch(r"[A-Za-z0-9]{32}", password)  # URL-safe: it is spliced into a redis:// URL
    checked = 0
    for template in chart.pod_templates():
        for container in template.containers():
            where = f"{template.owner} container {container['name']}"
            words = [*container.get("command", []), *container.get("args", [])]
            assert not any(password in word for word in words), where
            assert not any("requirepass" in word and "$" not in word for word in words), where
            env = container.get("env", [])
            assert not any(password in str(entry.get("value", "")) for entry in env), where
            names = [entry["name"] for entry in env]
            if "MESHLOAD_REDIS" in names:
                checked += 1
                url = env[names.index("MESHLOAD_REDIS")]["value"]
                assert url == "redis://:$(MESHLOAD_REDIS_PASSWORD)@perf-meshload-redis.perf.svc:6379/0", where
                # $(VAR) expands only from variables defined earlier in the list.
                password_entry = env[names.index("MESHLOAD_REDIS_PASSWORD")]
                assert names.index("MESHLOAD_REDIS_PASSWORD") < names.index("MESHLOAD_REDIS"), where
                assert password_entry["valueFrom"]["secretKeyRef"] == {
                    "name": "perf-meshload-redis",
                    "key": "redis-password",
                }, where
            if container["name"] == "redis":
                [auth] = [entry for entry in env if entry["name"] == "REDISCLI_AUTH"]
                assert auth["valueFrom"]["secretKeyRef"]["name"] == "perf-meshload-redis"
                assert 'printf \'requirepass "%s"\\n\' "$REDISCLI_AUTH"' in container["command"][-1]
    assert checked >= (2 if chart_name == "default" else 4)  # workers and the test pod (+ Job, CronJob)


def test_an_existing_secret_is_used_as_it_is_and_none_is_generated(render: Render) -> None:
    chart = render({**EVERYTHING, "redis": {"auth": {"existingSecret": "team-redis", "passwordKey": "pw"}}})
    assert not chart.of_kind("Secret")
    refs = [
        entry["valueFrom"]["secretKeyRef"]
        for template in chart.pod_templates()
        for container in template.containers()
        for entry in container.get("env", [])
        if entry["name"] in ("MESHLOAD_REDIS_PASSWORD", "REDISCLI_AUTH")
    ]
    assert len(refs) >= 5
    assert all(ref == {"name": "team-redis", "key": "pw"} for ref in refs)


def test_with_an_external_redis_the_whole_url_comes_from_its_secret(render: Render) -> None:
    chart = render({**EVERYTHING, "redis": {"mode": "external", "external": {"existingSecret": "ext", "urlKey": "u"}}})
    assert not chart.of_kind("Secret") and not chart.of_kind("StatefulSet")
    for template in chart.pod_templates():
        if template.labels["app.kubernetes.io/component"] == "test-echo":
            continue
        env = {entry["name"]: entry for entry in template.containers()[0]["env"]}
        assert env["MESHLOAD_REDIS"] == {
            "name": "MESHLOAD_REDIS",
            "valueFrom": {"secretKeyRef": {"name": "ext", "key": "u"}},
        }, template.owner
        assert "MESHLOAD_REDIS_PASSWORD" not in env
