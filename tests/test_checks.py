"""Exercise checkers: each accepts a correct answer, rejects typical wrong ones with a hint that
names the mistake, and reports (never raises) an exception from the learner's code."""
import math

import pytest
import torch
import torch.nn.functional as F
from checker_verdicts import assert_fails, assert_passes, verdict

from llmbook import checks
from llmbook.attention import scaled_dot_product_attention
from llmbook.checks._core import Case, run_cases
from llmbook.data import mask_tokens
from llmbook.positional import sinusoidal_encoding


# ----------------------------------------------------------------- scaled dot-product attention
def attention(q, k, v, mask=None, scale=None, dim=-1, fill=float("-inf"), invert=False):
    """A learner's attention, with switches for the classic mistakes; returns output only."""
    scale = 1 / math.sqrt(q.size(-1)) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale
    if mask is not None:
        scores = scores.masked_fill(mask if invert else ~mask, fill)
    return torch.softmax(scores, dim=dim) @ v


def test_attention_checker_accepts_output_alone_or_with_weights(capsys):
    assert_passes(capsys, checks.check_scaled_dot_product_attention, attention)
    assert_passes(capsys, checks.check_scaled_dot_product_attention, scaled_dot_product_attention)


@pytest.mark.parametrize("wrong, fragments", [
    (lambda q, k, v, mask=None: attention(q, k, v, mask, scale=1.0), ["case 1", "sqrt(d_k)"]),
    (lambda q, k, v, mask=None: attention(q, k, v, mask, scale=1 / q.size(-1)), ["divided by d_k"]),
    (lambda q, k, v, mask=None: attention(q, k, v, mask, scale=1 / math.sqrt(v.size(-1))),
     ["case 3", "not of the values"]),
    (lambda q, k, v, mask=None: attention(q, k, v, mask, dim=-2), ["over the keys", "dim=-1"]),
    (lambda q, k, v, mask=None: attention(q, k, v, mask, invert=True),
     ["case 4 (q (2, 4, 5, 8), mask=causal)", "nan", "True where attention is allowed"]),
    (lambda q, k, v, mask=None: attention(q, k, v, mask, fill=0.0), ["not 0"]),
    (lambda q, k, v, mask=None: attention(q, k, v, None), ["mask was ignored"]),
])
def test_attention_checker_names_the_mistake(capsys, wrong, fragments):
    assert_fails(capsys, checks.check_scaled_dot_product_attention, wrong, *fragments)


def test_attention_checker_reports_how_far_off_and_where(capsys):
    line = assert_fails(capsys, checks.check_scaled_dot_product_attention,
                        lambda q, k, v, mask=None: attention(q, k, v, mask) + 0.5)
    assert "case 1 (q (3, 4), no mask): output differs from the reference by up to 0.5 at index (" in line


def test_attention_checker_reports_wrong_weights_and_shapes(capsys):
    def wrong_weights(q, k, v, mask=None):
        out, w = scaled_dot_product_attention(q, k, v, mask)
        return out, w.transpose(-2, -1)

    assert_fails(capsys, checks.check_scaled_dot_product_attention, wrong_weights, "the attention weights")
    assert_fails(capsys, checks.check_scaled_dot_product_attention,
                 lambda q, k, v, mask=None: attention(q, k, v, mask)[..., 0], "has shape (3,)", "(3, 4)")
    assert_fails(capsys, checks.check_scaled_dot_product_attention,
                 lambda q, k, v, mask=None: attention(q, k, v, mask).tolist(), "is a list")


def test_an_exception_in_the_learners_code_is_reported_not_raised(capsys):
    def broken(q, k, v, mask=None):
        return q @ k  # forgot the transpose: fails on (3, 4) @ (3, 4)

    line = assert_fails(capsys, checks.check_scaled_dot_product_attention, broken,
                        "case 1 (q (3, 4), no mask)", "your function raised RuntimeError")
    assert "Traceback" not in line


def test_checkers_leave_the_global_rng_alone(capsys):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    checks.check_scaled_dot_product_attention(attention)
    checks.check_mlm_mask(mask_tokens)
    capsys.readouterr()
    assert torch.equal(torch.rand(3), expected)


# ----------------------------------------------------------------------------------- causal mask
def test_causal_mask_checker(capsys):
    assert_passes(capsys, checks.check_causal_mask, lambda T: torch.ones(T, T, dtype=torch.bool).tril())
    assert_fails(capsys, checks.check_causal_mask, lambda T: torch.ones(T, T, dtype=torch.bool).triu(),
                 "case 1 (T=4)", "the future")
    assert_fails(capsys, checks.check_causal_mask, lambda T: torch.ones(T, T, dtype=torch.bool).triu(1),
                 "True where attention is blocked")
    assert_fails(capsys, checks.check_causal_mask, lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1),
                 "attend to itself")
    assert_fails(capsys, checks.check_causal_mask, lambda T: torch.ones(T, T).tril(), "dtype torch.float32", "bool")
    additive = lambda T: torch.full((T, T), float("-inf")).triu(1)  # noqa: E731
    assert_fails(capsys, checks.check_causal_mask, additive, "-inf", "additive")


# ----------------------------------------------------------------------------- sinusoidal table
def sinusoids(max_len, d_model, two=2, swap=False):
    pos = torch.arange(max_len)[:, None].float()
    div = 10000 ** (two * torch.arange(d_model // 2).float() / d_model)
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2], pe[:, 1::2] = (torch.cos(pos / div), torch.sin(pos / div)) if swap else \
        (torch.sin(pos / div), torch.cos(pos / div))
    return pe


def test_sinusoidal_checker(capsys):
    assert_passes(capsys, checks.check_sinusoidal_encoding, sinusoids)
    assert_passes(capsys, checks.check_sinusoidal_encoding, sinusoidal_encoding)
    assert_fails(capsys, checks.check_sinusoidal_encoding, lambda n, d: sinusoids(n, d, swap=True), "swapped")
    assert_fails(capsys, checks.check_sinusoidal_encoding, lambda n, d: sinusoids(n, d, two=1), "2i/d_model")
    halves = lambda n, d: torch.cat([sinusoids(n, d)[:, 0::2], sinusoids(n, d)[:, 1::2]], -1)  # noqa: E731
    assert_fails(capsys, checks.check_sinusoidal_encoding, halves, "interleave")


# ------------------------------------------------------------------------------------- softmax
def softmax(x, dim=-1):
    e = torch.exp(x - x.max(dim=dim, keepdim=True).values)
    return e / e.sum(dim=dim, keepdim=True)


def test_softmax_checker(capsys):
    assert_passes(capsys, checks.check_softmax, softmax)
    assert_fails(capsys, checks.check_softmax, lambda x, dim=-1: torch.exp(x) / torch.exp(x).sum(dim, keepdim=True),
                 "large inputs", "nan", "subtract the maximum")
    assert_fails(capsys, checks.check_softmax, lambda x, dim=-1: softmax(x), "case 4 (x (3, 4), dim=0)", "dim argument")
    global_max = lambda x, dim=-1: torch.exp(x - x.max()) / torch.exp(x - x.max()).sum(dim, keepdim=True)  # noqa
    assert_fails(capsys, checks.check_softmax, global_max, "rows on different scales", "whole tensor")
    no_keepdim = lambda x, dim=-1: torch.exp(x) / torch.exp(x).sum(dim)  # noqa: E731
    assert_fails(capsys, checks.check_softmax, no_keepdim, "keepdim=True")


# -------------------------------------------------------------------------------- cross-entropy
def cross_entropy(logits, targets):
    log_probs = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
    return -log_probs[torch.arange(len(targets)), targets].mean()


def test_cross_entropy_checker(capsys):
    assert_passes(capsys, checks.check_cross_entropy, cross_entropy)
    assert_passes(capsys, checks.check_cross_entropy, lambda logits, t: F.cross_entropy(logits, t).item())
    assert_fails(capsys, checks.check_cross_entropy, lambda logits, t: cross_entropy(logits, t) * len(t),
                 "(mean), not the sum")
    assert_fails(capsys, checks.check_cross_entropy,
                 lambda logits, t: -torch.log(torch.softmax(logits, -1))[torch.arange(len(t)), t].mean(),
                 "large logits", "inf", "stably")
    assert_fails(capsys, checks.check_cross_entropy,
                 lambda logits, t: -torch.log_softmax(logits, -1)[:, t].mean(), "each row's own target")
    assert_fails(capsys, checks.check_cross_entropy,
                 lambda logits, t: F.cross_entropy(logits, t, reduction="none"), "shape (4,)", "single number")


# ----------------------------------------------------------------------------------- perplexity
def test_perplexity_checker(capsys):
    assert_passes(capsys, checks.check_perplexity, lambda lp: torch.exp(-lp.mean()))
    assert_passes(capsys, checks.check_perplexity, lambda lp: math.exp(-sum(lp.tolist()) / len(lp)))
    line = assert_fails(capsys, checks.check_perplexity, lambda lp: torch.exp(lp.mean()), "Check the sign")
    assert "the result is 0.1 but the reference gives 10" in line
    assert_fails(capsys, checks.check_perplexity, lambda lp: torch.exp(-lp.sum()), "not the sum")
    assert_fails(capsys, checks.check_perplexity, lambda lp: torch.exp(-lp).mean(), "not average the exponentials")
    assert_fails(capsys, checks.check_perplexity, lambda lp: -lp.mean(), "cross-entropy")


# ------------------------------------------------------------------ perplexity in other units
def test_perplexity_conversion_checker(capsys):
    assert_passes(capsys, checks.check_perplexity_conversion, lambda ppl, a, b: ppl ** (a / b))
    # the same thing through the total: nats = a * ln(ppl), then exp(nats / b), in a tensor
    assert_passes(capsys, checks.check_perplexity_conversion,
                  lambda ppl, a, b: torch.exp(torch.tensor(a * math.log(ppl) / b, dtype=torch.float64)))
    line = assert_fails(capsys, checks.check_perplexity_conversion, lambda ppl, a, b: ppl,
                        "case 1", "perplexity is per unit")
    assert "the reference gives 4.55" in line  # ln 39.3 = 3.671; x 2000 / 4844 = 1.516; e ** 1.516 = 4.55
    assert_fails(capsys, checks.check_perplexity_conversion, lambda ppl, a, b: ppl ** (b / a), "n_from / n_to")
    assert_fails(capsys, checks.check_perplexity_conversion, lambda ppl, a, b: ppl * a / b, "scale the exponent")
    assert_fails(capsys, checks.check_perplexity_conversion, lambda ppl, a, b: ppl * b / a, "scale the exponent")
    assert_fails(capsys, checks.check_perplexity_conversion, lambda ppl, a, b: 2 ** (math.log(ppl) * a / b),
                 "one base")
    assert_fails(capsys, checks.check_perplexity_conversion, lambda ppl, a, b: str(ppl), "expected a torch.Tensor")


def test_perplexity_conversion_known_value(capsys):
    # 16 per token over 300 tokens, restated over 600 bytes: 16 ** (1/2) = 4 exactly
    assert_passes(capsys, checks.check_perplexity_conversion,
                  lambda ppl, a, b: 4.0 if (ppl, a, b) == (16.0, 300, 600) else ppl ** (a / b))
    assert_fails(capsys, checks.check_perplexity_conversion,
                 lambda ppl, a, b: 4.5 if (ppl, a, b) == (16.0, 300, 600) else ppl ** (a / b), "case 3")


# ------------------------------------------------------------------------- visible and hidden cases
def _raises(*args, **kwargs):
    raise RuntimeError("not written yet")


@pytest.mark.parametrize("name", checks.__all__)
def test_every_checker_has_visible_and_hidden_cases(capsys, name):
    """An nbgrader test cell runs the visible cases and, when grading, the hidden ones: both must exist,
    and each selection starts at its own first case (numbered as in the book's full run)."""
    checker = getattr(checks, name)
    first = {}
    for cases in ("all", "visible", "hidden"):
        line = assert_fails(capsys, checker, _raises, "your function raised RuntimeError", cases=cases)
        first[cases] = int(line.split(": case ")[1].split()[0])
    assert first["all"] == 1 and 1 in (first["visible"], first["hidden"]), first
    assert first["visible"] != first["hidden"], first


def test_visible_and_hidden_cases_add_up_to_all(capsys):
    counts = {}
    for cases in ("all", "visible", "hidden"):
        _, line = verdict(capsys, checks.check_softmax, softmax, cases)
        assert line.startswith("[PASS]"), line
        counts[cases] = int(line.split(": all ")[1].split()[0])
    assert counts == {"all": 7, "visible": 5, "hidden": 2}


def test_a_mistake_only_the_hidden_cases_catch(capsys):
    naive = lambda x, dim=-1: torch.exp(x) / torch.exp(x).sum(dim, keepdim=True)  # noqa: E731
    assert_passes(capsys, checks.check_softmax, naive, cases="visible")
    assert_fails(capsys, checks.check_softmax, naive, "case 6 (x = [1000, 1001, 1002]: large inputs)",
                 "subtract the maximum", cases="hidden")


def test_an_unknown_case_set_is_refused_by_name():
    with pytest.raises(ValueError, match="cases='visble'"):
        checks.check_softmax(softmax, cases="visble")


def test_an_empty_selection_is_an_error_not_a_pass():
    only_visible = [Case("x", (1,))]
    with pytest.raises(ValueError, match="check_demo has no hidden cases"):
        run_cases("check_demo", lambda x: x, only_visible, lambda x: x, lambda got, exp: None, which="hidden")


def test_a_verdict_is_a_bool_that_a_notebook_does_not_display():
    from llmbook.checks.verdict import Verdict

    assert Verdict(True) and not Verdict(False)
    assert Verdict(True) == True and Verdict(False) == False  # noqa: E712 (the comparison is the point)
    assert Verdict(True) != Verdict(False) and repr(Verdict(False)) == "Verdict(passed=False)"
    # what a notebook would show as the cell's Out[] value: nothing for a verdict, "True" for a bool
    from IPython.core.formatters import DisplayFormatter

    formatter = DisplayFormatter()
    assert formatter.format(Verdict(True)) == ({}, {})
    assert formatter.format(True)[0] == {"text/plain": "True"}
