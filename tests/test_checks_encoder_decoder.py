"""Checkers of chapter 4: each accepts the reference, rejects typical wrong answers with a hint that
names the mistake, and reports (never raises) an exception from the learner's code."""
import pytest
import torch
import torch.nn.functional as F
from checker_verdicts import assert_fails, assert_passes

from llmbook import checks
from llmbook.blocks import EncoderBlock
from llmbook.data import teacher_forcing_targets


# ----------------------------------------------------------------------------------- layer norm
def layer_norm(x, gamma, beta, eps=1e-5, unbiased=False, eps_outside=False):
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=unbiased)
    denominator = var.sqrt() + eps if eps_outside else (var + eps).sqrt()
    return gamma * (x - mean) / denominator + beta


def test_layer_norm_checker(capsys):
    assert_passes(capsys, checks.check_layer_norm, layer_norm)
    assert_passes(capsys, checks.check_layer_norm,
                  lambda x, g, b, eps=1e-5: F.layer_norm(x, x.shape[-1:], g, b, eps))
    assert_fails(capsys, checks.check_layer_norm, lambda x, g, b, eps=1e-5: layer_norm(x, g, b, eps, unbiased=True),
                 "biased variance")
    assert_fails(capsys, checks.check_layer_norm,
                 lambda x, g, b, eps=1e-5: layer_norm(x, g, b, eps, eps_outside=True),
                 "variance near eps", "inside the square root")
    assert_fails(capsys, checks.check_layer_norm, lambda x, g, b, eps=1e-5: layer_norm(x, g, b),
                 "case 5 (x (2, 6), eps=0.1)")
    assert_fails(capsys, checks.check_layer_norm,
                 lambda x, g, b, eps=1e-5: layer_norm(x, torch.ones_like(g), torch.zeros_like(b), eps),
                 "gamma * x_hat + beta")


# ------------------------------------------------------------------------------ residual sublayer
class _Module(torch.nn.Module):
    """A function as a module, to stand in for a block's LayerNorm or attention."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


def residual(x, sublayer, norm, norm_first):
    return x + sublayer(norm(x)) if norm_first else norm(x + sublayer(x))


def test_residual_sublayer_checker_accepts_the_reference_and_the_package_block(capsys):
    assert_passes(capsys, checks.check_residual_sublayer, residual)
    block = EncoderBlock(8, 2, 0)  # d_ff=0: one sublayer, the residual the chapter asks for

    def via_package(x, sublayer, norm, norm_first):
        block.norm_first, block.norm1 = norm_first, _Module(norm)
        block.attn = _Module(lambda h, **_: (sublayer(h), None))  # the sublayer in attention's place
        return block(x).hidden_states

    assert_passes(capsys, checks.check_residual_sublayer, via_package)


@pytest.mark.parametrize("wrong, fragments", [
    (lambda x, f, n, nf: residual(x, f, n, not nf), ["case 1 (pre-LN", "Yours does the other one"]),
    (lambda x, f, n, nf: f(n(x)) if nf else n(f(x)), ["add the input x back"]),
    (lambda x, f, n, nf: n(x) + f(n(x)) if nf else n(x + f(x)), ["raw x, not LN(x)"]),
    (lambda x, f, n, nf: n(x + f(n(x))) if nf else n(x + f(x)), ["does not normalise the sum"]),
    (lambda x, f, n, nf: x + f(n(x)) if nf else x + n(f(x)), ["case 2 (post-LN", "not only the sublayer"]),
    (lambda x, f, n, nf: x + f(x), ["differs from the reference"]),
    (lambda x, f, n, nf: 1 / 0, ["raised ZeroDivisionError"]),
])
def test_residual_sublayer_checker_names_the_mistake(capsys, wrong, fragments):
    assert_fails(capsys, checks.check_residual_sublayer, wrong, *fragments)


def test_residual_sublayer_checker_leaves_the_global_rng_alone(capsys):
    state = torch.random.get_rng_state()
    checks.check_residual_sublayer(residual)
    capsys.readouterr()
    assert torch.equal(state, torch.random.get_rng_state())


# -------------------------------------------------------------------------------- teacher forcing
def teacher_forcing(targets, bos_id, eos_id, pad_id, label_pad=None):
    n = max(len(t) for t in targets) + 1
    inputs = torch.full((len(targets), n), pad_id)
    labels = torch.full((len(targets), n), pad_id if label_pad is None else label_pad)
    for b, t in enumerate(targets):
        inputs[b, : len(t) + 1] = torch.tensor([bos_id] + list(t))
        labels[b, : len(t) + 1] = torch.tensor(list(t) + [eos_id])
    return inputs, labels


def test_teacher_forcing_checker_accepts_the_package_and_minus_100_padding(capsys):
    assert_passes(capsys, checks.check_teacher_forcing_targets, teacher_forcing_targets)
    assert_passes(capsys, checks.check_teacher_forcing_targets, teacher_forcing)
    assert_passes(capsys, checks.check_teacher_forcing_targets,
                  lambda t, b, e, p: teacher_forcing(t, b, e, p, label_pad=-100))


def _shifted_wrong(targets, bos_id, eos_id, pad_id, how):
    inputs, labels = teacher_forcing(targets, bos_id, eos_id, pad_id)
    if how == "no_shift":
        return labels, labels.clone()
    if how == "copy":
        return inputs, inputs.clone()
    if how == "no_eos":
        return inputs, labels.masked_fill(labels == eos_id, pad_id)
    if how == "swap":
        return labels, inputs
    if how == "hardcoded":
        return teacher_forcing(targets, 1, 2, 0)
    raise ValueError(how)


@pytest.mark.parametrize("how, fragments", [
    ("no_shift", ["case 1", "starting with bos", "copy"]),
    ("copy", ["shifted left by one"]),
    ("no_eos", ["end every label row with eos"]),
    ("swap", ["in this order"]),
    ("hardcoded", ["case 4 (other special ids", "use the ids you are given"]),
])
def test_teacher_forcing_checker_names_the_mistake(capsys, how, fragments):
    assert_fails(capsys, checks.check_teacher_forcing_targets,
                 lambda t, b, e, p: _shifted_wrong(t, b, e, p, how), *fragments)


def test_teacher_forcing_checker_reports_shapes_types_and_eos_in_the_inputs(capsys):
    def eos_in_inputs(targets, bos_id, eos_id, pad_id):
        inputs, labels = teacher_forcing(targets, bos_id, eos_id, pad_id)
        return torch.cat([inputs, labels[:, -1:]], 1), labels

    assert_fails(capsys, checks.check_teacher_forcing_targets,
                 lambda t, b, e, p: [x.float() for x in teacher_forcing(t, b, e, p)], "dtype torch.float32")
    assert_fails(capsys, checks.check_teacher_forcing_targets, lambda t, b, e, p: teacher_forcing(t, b, e, p)[0],
                 "expected a pair (decoder_inputs, labels)")
    line = assert_fails(capsys, checks.check_teacher_forcing_targets, eos_in_inputs, "shape (1, 5)")
    assert "stops before eos" in line


# ------------------------------------------------------------------------ grouped-query head grouping
def test_kv_head_checker_accepts_the_layout_of_the_package_attention(capsys):
    from llmbook.attention import MultiHeadAttention

    def from_the_package(query_head, n_heads, n_kv_heads):
        """Read the grouping off a real layer: give KV head g the value g + 1, see what each query head gets."""
        d_head = 2
        attn = MultiHeadAttention(n_heads * d_head, n_heads, bias=True, n_kv_heads=n_kv_heads)
        with torch.no_grad():
            attn.in_proj.weight.zero_()
            attn.in_proj.bias.zero_()
            attn.in_proj.bias[-n_kv_heads * d_head:] = torch.arange(1.0, n_kv_heads + 1).repeat_interleave(d_head)
            attn.out_proj.weight.copy_(torch.eye(n_heads * d_head))
            attn.out_proj.bias.zero_()
            out = attn(torch.zeros(1, 1, n_heads * d_head))[0]  # (1, 1, H * d_head): head h's value
        return int(out[0, 0, query_head * d_head].item()) - 1

    assert_passes(capsys, checks.check_kv_head_of, from_the_package)
    assert_passes(capsys, checks.check_kv_head_of, lambda q, h, g: q * g // h)


@pytest.mark.parametrize("wrong, fragment", [
    (lambda q, h, g: q % g, "consecutive query heads share"),
    (lambda q, h, g: q // g, "group size"),
    (lambda q, h, g: q, "cannot have a KV head of its own"),
])
def test_kv_head_checker_names_the_usual_mistakes(capsys, wrong, fragment):
    assert_fails(capsys, checks.check_kv_head_of, wrong, "should read", fragment)


def test_kv_head_checker_reports_errors_and_non_integers(capsys):
    assert_fails(capsys, checks.check_kv_head_of, lambda q, h, g: 1 / 0, "ZeroDivisionError")
    assert_fails(capsys, checks.check_kv_head_of, lambda q, h, g: "zero", "expected an integer")
    right_on_visible_only = lambda q, h, g: q * g // h if h not in (6, 32) else 0  # noqa: E731
    assert_fails(capsys, checks.check_kv_head_of, right_on_visible_only, "case 5 (n_heads=6, n_kv_heads=3)")
    assert_passes(capsys, checks.check_kv_head_of, right_on_visible_only, cases="visible")
