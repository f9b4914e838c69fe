"""The quantisation experiment at a tiny size: the float row is the plain score, the others stay close,
and the stored bytes shrink with the bits."""
from llmbook import pretrained
from llmbook.experiments import quantization


def test_tiny_run_scores_each_variant_against_the_float_model():
    result = quantization.run("shakespeare-gpt", "test", tokens=300, group_sizes=(64,))
    rows = result["variants"]
    model, _ = pretrained.load("shakespeare-gpt")
    nats, count = pretrained.lm_nats(model, pretrained.token_stream("shakespeare-gpt", "test")[:300])
    assert rows["float32"]["loss"] == nats / count and result["settings"]["scored_tokens"] == count == 299
    for name in ("int8 per row", "int8 kernels (torch.ao)", "float32 weights, int8 KV cache"):
        assert abs(rows[name]["loss"] - rows["float32"]["loss"]) < 0.02, name
    params = model.num_parameters()
    assert rows["float32"]["bytes"] == 4 * params
    assert rows["float32"]["bytes"] > rows["int8 per row"]["bytes"] > rows["4-bit, groups of 64"]["bytes"] \
        > rows["4-bit per row"]["bytes"]
    assert rows["int8 kernels (torch.ao)"]["bytes"] is None


def test_cached_scoring_equals_plain_scoring_when_the_cache_keeps_floats():
    model, _ = pretrained.load("shakespeare-gpt")
    ids = pretrained.token_stream("shakespeare-gpt", "test")[:600]
    cached, count = quantization.lm_nats_cached(model, ids, int8=False)
    plain, plain_count = pretrained.lm_nats(model, ids)
    assert count == plain_count and abs(cached - plain) < 1e-4 * plain
    rounded, _ = quantization.lm_nats_cached(model, ids, int8=True)
    assert rounded != cached and abs(rounded - cached) < 0.01 * cached
