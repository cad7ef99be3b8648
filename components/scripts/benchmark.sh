# shellcheck shell=bash
# Step (on the Ray head): one `vllm bench serve` scenario on the random dataset, against vLLM
# itself on 127.0.0.1 (PORT is its local port). The Command's stdout is exactly the saved result JSON.
# Env: IMAGE, MODEL_DIR, MODEL_ROOT, SERVED_NAME, PORT, SCENARIO, INPUT_LEN, OUTPUT_LEN, NUM_PROMPTS,
#      CONCURRENCY, WARMUPS, RUN_ID, BENCH_TIMEOUT (seconds).
result_dir=/var/lib/qwen/benchmarks
result_file="$SCENARIO-run-$RUN_ID.json"
qwen_diagnostics() {
  echo "qwen: last lines of the vllm container log:"
  docker logs --tail 20 qwen-vllm 2>&1
}
install -d "$result_dir"
rm -f "${result_dir:?}/$result_file"
bench() {
  timeout "$BENCH_TIMEOUT" docker run --rm --network host --gpus all \
    -v "$QWEN_API_KEY_FILE:$QWEN_API_KEY_MOUNT:ro" \
    -v "$MODEL_ROOT:$MODEL_ROOT:ro,rslave" -v "$result_dir:/results" \
    --entrypoint sh "$IMAGE" -c "$(exec_vllm_with_key OPENAI_API_KEY)" vllm bench serve \
    --backend openai --base-url "http://127.0.0.1:$PORT" \
    --model "$SERVED_NAME" --tokenizer "$MODEL_DIR" \
    --dataset-name random --random-input-len "$INPUT_LEN" --random-output-len "$OUTPUT_LEN" --random-range-ratio 0 \
    --max-concurrency "$CONCURRENCY" --request-rate inf \
    --ready-check-timeout-sec 0 \
    --temperature 0 --ignore-eos "$@"
}
# --ready-check-timeout-sec 0: v0.11.0 otherwise first sends prompt 0 as a readiness probe, which
# puts the measured prompt in the prefix cache; the health step has gated readiness already.
# Warm-up: requests of the same shape, unmeasured. A separate run rather than --num-warmups,
# which vLLM added after v0.11.0; another seed, so the measured prompts are not in the prefix cache.
if [ "$WARMUPS" -gt 0 ]; then
  progress "benchmark $SCENARIO: $WARMUPS warm-up request(s)"
  bench --num-prompts "$WARMUPS" --seed 1 || fail "the warm-up run of $SCENARIO failed"
fi
progress "benchmark $SCENARIO: $NUM_PROMPTS prompt(s) of $INPUT_LEN tokens -> $OUTPUT_LEN tokens at concurrency $CONCURRENCY"
bench --num-prompts "$NUM_PROMPTS" --seed 0 \
  --percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,90,99 \
  --label "$SCENARIO" --save-result --result-dir /results --result-filename "$result_file" ||
  fail "vllm bench serve failed or ran over ${BENCH_TIMEOUT}s"
# v0.11.0's result has no failed count: every prompt completed when completed equals num_prompts.
jq -e --argjson n "$NUM_PROMPTS" '.num_prompts == $n and .completed == $n' "$result_dir/$result_file" >/dev/null ||
  fail "scenario $SCENARIO completed $(jq .completed "$result_dir/$result_file") of $NUM_PROMPTS requests"
progress "benchmark $SCENARIO: $(jq .output_throughput "$result_dir/$result_file") output tokens/s"
cat "$result_dir/$result_file" >&3
