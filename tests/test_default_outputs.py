"""Options added to the models leave the default models as they were: the same parameter names, the
same initial weights, the same outputs.

The reference (tests/data/default_outputs.pt) was recorded on commit 3b29e00, before the options of
the modern decoder (RMSNorm, gated feed-forward, rotary base and interpolation, grouped-query
attention) existed. The notebooks' committed outputs are compared bit for bit (nbval strict), so a
default model must not change by a single bit: where llmbook.numerics pins the kernels the outputs
are compared exactly, elsewhere to float rounding.

Re-record only for a change that is meant to alter the default models:
    .venv/bin/python tests/test_default_outputs.py
"""
from pathlib import Path

import pytest
import torch

from llmbook import numerics
from llmbook.models import BERT, GPT, BERTConfig, GPTConfig, Seq2Seq, Seq2SeqConfig

REFERENCE = Path(__file__).parent / "data" / "default_outputs.pt"
SMALL = dict(context_length=16, n_heads=2, d_model=16, d_ff=32)
CASES = {
    "gpt": (GPT, GPTConfig(vocab_size=24, n_layers=2, **SMALL)),
    "gpt-rope-postln-untied-nobias": (GPT, GPTConfig(vocab_size=24, n_layers=2, pos_encoding="rope", norm_first=False,
                                                     tie_weights=False, bias=False, **SMALL)),
    "gpt-sinusoidal-relu": (GPT, GPTConfig(vocab_size=24, n_layers=1, pos_encoding="sinusoidal", activation="relu",
                                           **SMALL)),
    "gpt-attention-only": (GPT, GPTConfig(vocab_size=24, n_layers=2, **{**SMALL, "d_ff": 0})),
    "bert": (BERT, BERTConfig(vocab_size=24, n_layers=2, num_labels=3, **SMALL)),
    "seq2seq-rope": (Seq2Seq, Seq2SeqConfig(src_vocab_size=24, tgt_vocab_size=20, pos_encoding="rope", **SMALL)),
}


def _checksum(t):
    """sum_i (i + 1) t_i in float64: a changed, added or moved value changes it."""
    flat = t.detach().double().flatten()
    return (flat * torch.arange(1, flat.numel() + 1, dtype=torch.float64)).sum()


def _outputs(name):
    """What a seeded model of CASES[name] has and computes: its parameters' names, shapes and checksums
    (initial weights), its logits through the
    fused and the explicit attention paths, and (GPT) step-by-step cached logits and a greedy generation."""
    cls, cfg = CASES[name]
    torch.manual_seed(0)
    model = cls(cfg).eval()
    ids = torch.randint(1, 20, (2, 12), generator=torch.Generator().manual_seed(1))
    state = model.state_dict()
    out = {"parameter_shapes": {k: list(v.shape) for k, v in state.items()},
           "parameter_checksums": torch.stack([_checksum(v) for v in state.values()])}
    with torch.no_grad():
        if cls is Seq2Seq:
            out["logits"] = model(ids, ids[:, :9]).logits
            out["logits_explicit"] = model(ids, ids[:, :9], return_attention=True).logits
            out["greedy"] = model.greedy_decode(ids, 8)
        elif cls is BERT:
            res = model(ids, return_attention=True)
            out["logits"], out["class_logits"] = model(ids).logits, res.class_logits
            out["logits_explicit"] = res.logits
        else:
            out["logits"] = model(ids).logits
            out["logits_explicit"] = model(ids, return_attention=True).logits
            cache = model.new_kv_cache()
            steps = [model(ids[:, :5], kv_cache=cache).logits] + [
                model(ids[:, t:t + 1], kv_cache=cache).logits for t in range(5, 12)]
            out["logits_cached"] = torch.cat(steps, dim=1)
            out["greedy"] = model.generate(ids[:, :4], 10, temperature=0)
            out["kv_cache_nbytes"] = torch.tensor(cache.nbytes)
    return out


def _assert_same(got, want, where):
    if numerics.can_pin():  # the pinned kernels: bit for bit
        assert torch.equal(got, want), f"{where}: differs from the reference (max abs difference " \
                                       f"{(got.double() - want.double()).abs().max().item():.3g})"
    else:
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5, msg=lambda m: f"{where}: {m}")


@pytest.fixture(scope="module")
def reference():
    return torch.load(REFERENCE, weights_only=True)


@pytest.mark.parametrize("name", CASES)
def test_default_model_is_unchanged(name, reference):
    want, got = reference[name], _outputs(name)
    assert got["parameter_shapes"] == want["parameter_shapes"], f"{name}: parameter names or shapes changed"
    assert sorted(got) == sorted(want)
    for key in sorted(want):
        if key != "parameter_shapes":
            _assert_same(got[key], want[key], f"{name}: {key}")


if __name__ == "__main__":
    REFERENCE.parent.mkdir(exist_ok=True)
    torch.save({name: _outputs(name) for name in CASES}, REFERENCE)
    print(f"wrote {REFERENCE} ({REFERENCE.stat().st_size} bytes)")
