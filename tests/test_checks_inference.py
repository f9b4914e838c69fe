"""Chapter 7 checkers: each accepts the reference answer and names the usual mistakes."""
import pytest
import torch
from checker_verdicts import assert_fails, assert_passes

from llmbook import checks
from llmbook.generate import top_p_filter
from llmbook.quantize import quantize_weight


# -------------------------------------------------------------------------------- KV-cache bytes
def kv_bytes(n_layers, n_heads, n_kv_heads, d_head, n_tokens, batch_size, bytes_per_value):
    return 2 * n_layers * n_kv_heads * d_head * n_tokens * batch_size * bytes_per_value


def test_kv_cache_bytes_accepts_the_formula_and_the_package_cache(capsys):
    assert_passes(capsys, checks.check_kv_cache_bytes, kv_bytes)
    assert_passes(capsys, checks.check_kv_cache_bytes,
                  lambda L, H, Hkv, d, T, B, b: float(kv_bytes(L, H, Hkv, d, T, B, b)))  # a float of the right size


def test_kv_cache_bytes_has_grouped_and_multi_query_cases(capsys):
    """A formula with the query heads passes every case where they equal the key/value heads, so the
    checker must have cases where they differ, visible ones among them."""
    query_heads = lambda L, H, Hkv, d, T, B, b: 2 * L * H * d * T * B * b  # noqa: E731
    assert_fails(capsys, checks.check_kv_cache_bytes, query_heads, "case 2", "grouped-query", cases="visible")
    assert_fails(capsys, checks.check_kv_cache_bytes, query_heads, "multi-query", cases="hidden")


@pytest.mark.parametrize("wrong, fragments", [
    (lambda L, H, Hkv, d, T, B, b: 2 * L * H * d * T * B * b, ["case 2", "number of query heads (n_heads)"]),
    (lambda L, H, Hkv, d, T, B, b: L * Hkv * d * T * B * b, ["case 1", "multiply by 2"]),
    (lambda L, H, Hkv, d, T, B, b: 2 * Hkv * d * T * B * b, ["number of layers"]),
    (lambda L, H, Hkv, d, T, B, b: 2 * L * Hkv * d * T * b, ["case 4", "batch size"]),
    (lambda L, H, Hkv, d, T, B, b: 2 * L * d * T * B * b, ["case 1", "multiply by n_kv_heads"]),
    (lambda L, H, Hkv, d, T, B, b: 2 * L * Hkv * d * T * T * B * b, ["linearly", "T^2"]),
    (lambda L, H, Hkv, d, T, B, b: 8 * kv_bytes(L, H, Hkv, d, T, B, b), ["8 bits"]),
])
def test_kv_cache_bytes_names_the_mistake(capsys, wrong, fragments):
    assert_fails(capsys, checks.check_kv_cache_bytes, wrong, *fragments)


def test_kv_cache_bytes_reports_a_wrong_type_and_an_exception(capsys):
    assert_fails(capsys, checks.check_kv_cache_bytes, lambda *a: "many", "expected a number of bytes")
    assert_fails(capsys, checks.check_kv_cache_bytes, lambda *a: 1 / 0, "ZeroDivisionError")


# ---------------------------------------------------------------------------------- top-p filter
def learner_top_p(logits, p):
    """A learner's correct version, written differently from the package's."""
    probs = logits.softmax(-1)
    sorted_probs, order = probs.sort(-1, descending=True)
    before = sorted_probs.cumsum(-1) - sorted_probs  # probability of the tokens ranked above
    keep_sorted = before < p
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return torch.where(keep, logits, torch.full_like(logits, float("-inf")))


def test_top_p_accepts_the_reference_and_another_correct_version(capsys):
    assert_passes(capsys, checks.check_top_p_filter, top_p_filter)
    assert_passes(capsys, checks.check_top_p_filter, learner_top_p)


def _keep_below(logits, p):
    s, order = logits.sort(-1, descending=True)
    drop = s.softmax(-1).cumsum(-1) > p
    return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


@pytest.mark.parametrize("wrong, fragments", [
    (_keep_below, ["case 1", "is dropped but belongs to the nucleus", "reach p"]),
    (lambda logits, p: top_p_filter(logits, p).sort(-1, descending=True).values, ["original token order"]),
    (lambda logits, p: top_p_filter(logits, p).nan_to_num(neginf=0.0), ["-inf"]),
    (lambda logits, p: top_p_filter(logits, p).softmax(-1), ["not probabilities"]),
    (lambda logits, p: logits, ["is kept but lies outside the nucleus"]),
])
def test_top_p_names_the_mistake(capsys, wrong, fragments):
    assert_fails(capsys, checks.check_top_p_filter, wrong, *fragments)


# ------------------------------------------------------------------------------ int8 quantisation
def learner_int8(w):
    scale = w.abs().amax(dim=1, keepdim=True) / 127  # (out, 1): a learner may keep the dim
    scale = torch.where(scale == 0, torch.full_like(scale, 1e-8), scale)  # another way around 0 / 0
    return torch.round(w / scale).to(torch.int8), scale


def test_quantize_int8_accepts_the_reference_and_a_learner_version(capsys):
    assert_passes(capsys, checks.check_quantize_int8, lambda w: quantize_weight(w))
    assert_passes(capsys, checks.check_quantize_int8, learner_int8)


@pytest.mark.parametrize("wrong, fragments", [
    (lambda w: quantize_weight(w, per_channel=False), ["case 1", "one scale per row"]),
    (lambda w: ((w / (w.abs().amax(1, keepdim=True) / 127)).to(torch.int8), w.abs().amax(1) / 127),
     ["truncates"]),
    (lambda w: (torch.round(w / (w.amax(1, keepdim=True) / 127)).clamp(-127, 127).to(torch.int8),
                w.amax(1) / 127), ["ABSOLUTE"]),
    (lambda w: (torch.round(w / (w.abs().amax(1, keepdim=True) / 128)).to(torch.int8), w.abs().amax(1) / 128),
     ["127"]),
    (lambda w: (torch.round(w / (w.abs().amax(1, keepdim=True) / 127)), w.abs().amax(1) / 127), ["torch.int8"]),
    (lambda w: (torch.round(w / (w.abs().amax(1, keepdim=True) / 127)).to(torch.int8),
                (w.abs().amax(1) / 127).masked_fill(w.abs().amax(1) == 0, float("nan"))),
     ["case 4", "divided by 0"]),
    (lambda w: (torch.round(w / (w.abs().amax(0, keepdim=True)[:, :w.size(0)].T / 127)).to(torch.int8),
                w.abs().amax(0)[:w.size(0)] / 127), ["case 1"]),
])
def test_quantize_int8_names_the_mistake(capsys, wrong, fragments):
    assert_fails(capsys, checks.check_quantize_int8, wrong, *fragments)
