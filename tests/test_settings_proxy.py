"""The TLS proxy's settings: qwen:serving.proxyImage is pinned, and the API port is not vLLM's own."""

import pytest

from components.vllm_service import VLLM_LOCAL_PORT
from stacks.settings import parse_settings
from tests.test_settings import one_problem, raw_settings


@pytest.mark.parametrize("stack", ["uksouth", "aliyun-l20"])
def test_proxy_image_defaults_to_a_pinned_nginx(stack):
    assert parse_settings(stack, raw_settings(stack)).serving.proxy_image == "nginx:1.28.0-alpine"


@pytest.mark.parametrize("image", ["nginx", "nginx:", "nginx:latest", "nginx:LATEST", "", "ngi nx:1.28.0", "nginx:1.28 "])
def test_unpinned_proxy_image_is_refused(image):
    one_problem("uksouth", lambda r: r["serving"].update(proxyImage=image), "qwen:serving.proxyImage",
                "pinned to a version tag")


@pytest.mark.parametrize("image", ["registry.cn-hangzhou.aliyuncs.com/mirror/nginx:1.28.0-alpine",
                                   "registry.example:5000/nginx:1.28.0-alpine", f"nginx@sha256:{'a' * 64}"])
def test_a_mirror_or_digest_of_the_proxy_image_is_pinned(image):
    raw = raw_settings("aliyun-l20")
    raw["serving"]["proxyImage"] = image
    assert parse_settings("aliyun-l20", raw).serving.proxy_image == image


def test_api_port_must_not_be_vllms_local_port():
    one_problem("uksouth", lambda r: r["serving"].update(port=VLLM_LOCAL_PORT), "qwen:serving.port",
                f"{VLLM_LOCAL_PORT} is vLLM's own port", "use e.g. 8000")
