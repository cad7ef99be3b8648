"""The serving knobs as vllm_start.sh hands them to `vllm serve`: after the managed flags, one argument
each, the speculative JSON unsplit, and every flag one vLLM v0.11.0 accepts (the docker stand-in checks)."""

import json

from tests.steps.test_vllm import START_ENV, head, start  # noqa: F401 (fixture)
from tests.test_serving_knobs import SPECULATIVE, settings_with


def test_knob_flags_reach_vllm_serve_word_for_word(head):  # noqa: F811 (the fixture)
    args = settings_with("aliyun-l20", quantization="fp8", kvCacheDtype="fp8", speculativeDecoding=SPECULATIVE,
                         maxNumSeqs=128, maxNumBatchedTokens=8192, enablePrefixCaching=False).serving.vllm_args
    result = start(head, EXTRA_ARGS="\n".join(args))  # as VllmService renders EXTRA_ARGS
    assert result.returncode == 0, result.stderr
    container = head.container("qwen-vllm")
    assert container["State"]["Running"] and not container["State"]["Restarting"]  # v0.11.0 accepted every flag
    command = container["Config"]["Cmd"]
    assert command[-len(args):] == list(args)
    assert command[command.index("--gpu-memory-utilization") + 2:] == list(args)  # right after the managed flags
    assert json.loads(command[command.index("--speculative-config") + 1]) == {
        "method": "ngram", "num_speculative_tokens": 6, "prompt_lookup_max": 8, "prompt_lookup_min": 1}
