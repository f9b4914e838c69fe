"""Parity with Hugging Face transformers: the same weights give the same numbers in our models.

Every HF model is built from a small config with random weights (no download). Parameters are
re-drawn with a larger spread than HF's init (and LayerNorms made non-trivial), so that a swapped
or untransposed matrix, a LayerNorm mapped to the wrong place or a missing bias changes the output.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import (  # an optional dependency: pip install llmbook[interop]
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    BertForSequenceClassification,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    GPT2Model,
    LlamaConfig,
    LlamaForCausalLM,
)

import llmbook
from llmbook import BERT, GPT
from llmbook.interop import bert_from_hf, gpt_from_hf, llama_from_hf, try_load_hf

ATOL = 1e-5


def _randomize(model, seed, std=0.1):
    """Redraw every parameter (tied ones once): weights N(0, std), LayerNorm/RMSNorm weights 1 + N(0, 0.2)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # named_parameters yields a tied tensor only once
            noise = torch.randn(p.shape, generator=g)
            is_norm_weight = p.dim() == 1 and ("ln" in name or "norm" in name.lower()) and name.endswith("weight")
            p.copy_(1 + 0.2 * noise if is_norm_weight else std * noise)
    return model.eval()


def _gpt2(seed=0, cls=GPT2LMHeadModel, **overrides):
    kw = dict(n_layer=2, n_head=4, n_embd=64, vocab_size=100, n_positions=32,
              bos_token_id=None, eos_token_id=None)  # no eos: generation runs the full length
    kw.update(overrides)
    torch.manual_seed(seed)
    return _randomize(cls(GPT2Config(**kw)), seed)


GPT_VARIANTS = {
    "default-gelu_new": {},
    "n_inner-gelu-eps": dict(n_layer=3, n_head=2, n_embd=32, n_inner=96, activation_function="gelu",
                             layer_norm_epsilon=1e-6, n_positions=40),
    "relu-untied": dict(n_inner=80, activation_function="relu", tie_word_embeddings=False),
    "gelu_pytorch_tanh": dict(n_layer=1, n_head=8, activation_function="gelu_pytorch_tanh", n_positions=24),
    "silu": dict(activation_function="silu"),
}


# ------------------------------------------------------------------------------------------- GPT-2
def test_gpt_conversion_config_and_type():
    hf = _gpt2(n_inner=96)
    ours = gpt_from_hf(hf)
    assert isinstance(ours, GPT) and not ours.training
    c = ours.config
    assert (c.vocab_size, c.context_length, c.n_layers, c.n_heads, c.d_model, c.d_ff) == (100, 32, 2, 4, 64, 96)
    assert (c.activation, c.norm_first, c.pos_encoding, c.dropout, c.tie_weights) == \
        ("gelu_tanh", True, "learned", 0.0, True)
    assert ours.lm_head.weight is ours.tok_emb.weight
    # our copy is independent of the HF model: later changes to one do not leak into the other
    with torch.no_grad():
        hf.transformer.wte.weight.zero_()
    assert ours.tok_emb.weight.abs().sum() > 0


@pytest.mark.parametrize("variant", GPT_VARIANTS)
def test_gpt_logits_and_loss_match(variant):
    hf = _gpt2(seed=1, **GPT_VARIANTS[variant])
    ours = gpt_from_hf(hf)
    T = hf.config.n_positions
    ids = torch.randint(0, hf.config.vocab_size, (2, T), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = hf(ids, labels=ids)
        out = ours(ids)
        # HF shifts labels inside; ours takes already-shifted targets and predicts T-1 positions
        shifted = ours(ids[:, :-1], targets=ids[:, 1:])
    assert out.logits.shape == ref.logits.shape == (2, T, hf.config.vocab_size)
    torch.testing.assert_close(out.logits, ref.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(shifted.logits, ref.logits[:, :-1], atol=ATOL, rtol=0)
    torch.testing.assert_close(shifted.loss, ref.loss, atol=ATOL, rtol=0)
    assert ref.logits.std() > 0.3  # the random weights give logits that are far from uniform


def test_gpt_untied_head_is_copied():
    hf = _gpt2(seed=3, tie_word_embeddings=False)
    assert not torch.equal(hf.lm_head.weight, hf.transformer.wte.weight)
    ours = gpt_from_hf(hf)
    assert not ours.config.tie_weights and ours.lm_head.weight is not ours.tok_emb.weight
    torch.testing.assert_close(ours.lm_head.weight, hf.lm_head.weight, atol=0, rtol=0)


def test_gpt_from_bare_gpt2model_ties_head_to_wte():
    hf = _gpt2(seed=4, cls=GPT2Model)
    ours = gpt_from_hf(hf)
    ids = torch.randint(0, 100, (2, 32), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        h = hf(ids).last_hidden_state
        logits = ours(ids).logits
    assert ours.lm_head.weight is ours.tok_emb.weight
    torch.testing.assert_close(logits, h @ hf.wte.weight.T, atol=ATOL, rtol=0)


def _assert_greedy_generation_matches(hf, ours, prompt_seed, new_tokens, use_cache):
    """Both models continue the same 2 x 6 prompt greedily; the token ids must be identical."""
    prompt = torch.randint(0, 100, (2, 6), generator=torch.Generator().manual_seed(prompt_seed))
    with torch.no_grad():
        ref = hf.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                          max_new_tokens=new_tokens, pad_token_id=0)
    got = ours.generate(prompt, new_tokens, temperature=0, use_cache=use_cache)
    assert ref.shape == got.shape == (2, 6 + new_tokens)
    assert torch.equal(got, ref)
    assert len(set(got[:, 6:].flatten().tolist())) > 3  # not a degenerate repeat-one-token run


def _attention_weights(hf, ours, ids_seed):
    """(HF's, ours) attention maps, one per layer, on the same 2 x 20 batch of random ids."""
    ids = torch.randint(0, 100, (2, 20), generator=torch.Generator().manual_seed(ids_seed))
    with torch.no_grad():
        return hf(ids, output_attentions=True).attentions, ours(ids, return_attention=True).attentions


def _assert_left_padded_batch_matches(hf, ours, ids_seed):
    """With a padding mask ours restarts positions at the first real token, like HF generate does."""
    ids = torch.randint(1, 100, (2, 10), generator=torch.Generator().manual_seed(ids_seed))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0
    ids[0, :4] = 0
    with torch.no_grad():
        ref = hf(ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
        got = ours(ids, attention_mask=mask).logits
    real = mask.bool()
    torch.testing.assert_close(got[real], ref[real], atol=ATOL, rtol=0)


@pytest.mark.parametrize("use_cache", [True, False], ids=["cached", "uncached"])
def test_gpt_greedy_generation_matches_token_for_token(use_cache):
    hf = _gpt2(seed=6)
    _assert_greedy_generation_matches(hf, gpt_from_hf(hf), prompt_seed=7, new_tokens=20, use_cache=use_cache)


def test_gpt_attention_weights_match():
    hf = _gpt2(seed=8, attn_implementation="eager")
    ref, got = _attention_weights(hf, gpt_from_hf(hf), ids_seed=9)
    assert len(ref) == len(got) == 2
    for r, g in zip(ref, got):
        assert g.shape == r.shape == (2, 4, 20, 20)
        torch.testing.assert_close(g, r, atol=ATOL, rtol=0)
    assert got[0].triu(1).abs().max() == 0  # causal: nothing above the diagonal


def test_gpt_left_padded_batch_matches_hf_position_ids():
    hf = _gpt2(seed=10)
    _assert_left_padded_batch_matches(hf, gpt_from_hf(hf), ids_seed=11)


@pytest.mark.parametrize("setting,value", [
    ("scale_attn_by_inverse_layer_idx", True),
    ("reorder_and_upcast_attn", True),
    ("scale_attn_weights", False),
    ("add_cross_attention", True),
    ("activation_function", "quick_gelu"),
])
def test_gpt_refuses_unrepresentable_configs(setting, value):
    hf = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=20, n_positions=8,
                                    **{setting: value}))
    with pytest.raises(ValueError, match=setting):
        gpt_from_hf(hf)


@pytest.mark.parametrize("convert", [gpt_from_hf, bert_from_hf, llama_from_hf])
@pytest.mark.parametrize("model", [nn.Linear(2, 2), "gpt2"], ids=["module", "string"])
def test_wrong_model_type_raises_type_error(convert, model):
    with pytest.raises(TypeError, match="expected one of .*transformers"):
        convert(model)


def test_each_converter_refuses_the_other_family():
    with pytest.raises(TypeError, match="BertModel"):
        bert_from_hf(_gpt2())
    bert = BertModel(BertConfig(vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=8))
    with pytest.raises(TypeError, match="GPT2LMHeadModel"):
        gpt_from_hf(bert)


# ------------------------------------------------------------------------------------------- Llama
def _llama(seed=0, **overrides):
    kw = dict(vocab_size=100, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=32, rms_norm_eps=1e-6,
              bos_token_id=None, eos_token_id=None)  # no eos: generation runs the full length
    kw.update(overrides)
    torch.manual_seed(seed)
    return _randomize(LlamaForCausalLM(LlamaConfig(**kw)), seed)


LLAMA_VARIANTS = {
    "gqa-untied": {},
    "mqa-tied": dict(num_key_value_heads=1, tie_word_embeddings=True),
    "mha-theta-linear-scaling": dict(num_key_value_heads=4,
                                     rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0}),
    "six-heads-three-kv-gelu-eps": dict(hidden_size=48, num_attention_heads=6, num_key_value_heads=3,
                                        intermediate_size=80, num_hidden_layers=3, rms_norm_eps=1e-5,
                                        hidden_act="gelu", max_position_embeddings=24),
}


def test_llama_conversion_config():
    hf = _llama(**LLAMA_VARIANTS["mha-theta-linear-scaling"])
    ours = llama_from_hf(hf)
    assert isinstance(ours, GPT) and not ours.training
    c = ours.config
    assert (c.vocab_size, c.context_length, c.n_layers, c.n_heads, c.n_kv_heads, c.d_model, c.d_ff) == \
        (100, 32, 2, 4, 4, 64, 96)
    assert (c.norm, c.gated_ffn, c.activation, c.pos_encoding, c.bias, c.norm_first, c.dropout) == \
        ("rmsnorm", True, "silu", "rope", False, True, 0.0)
    assert (c.rope_theta, c.rope_interpolation, c.layer_norm_eps, c.tie_weights) == (500.0, 2.0, 1e-6, False)
    assert ours.lm_head.weight is not ours.tok_emb.weight
    torch.testing.assert_close(ours.lm_head.weight, hf.lm_head.weight, atol=0, rtol=0)
    tied = llama_from_hf(_llama(**LLAMA_VARIANTS["mqa-tied"]))
    assert tied.config.tie_weights and tied.lm_head.weight is tied.tok_emb.weight and tied.config.n_kv_heads == 1


@pytest.mark.parametrize("variant", LLAMA_VARIANTS)
def test_llama_logits_and_loss_match(variant):
    hf = _llama(seed=1, **LLAMA_VARIANTS[variant])
    ours = llama_from_hf(hf)
    T = hf.config.max_position_embeddings
    ids = torch.randint(0, 100, (2, T), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = hf(ids, labels=ids)
        out = ours(ids)
        shifted = ours(ids[:, :-1], targets=ids[:, 1:])
    assert out.logits.shape == ref.logits.shape == (2, T, 100)
    torch.testing.assert_close(out.logits, ref.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(shifted.loss, ref.loss, atol=ATOL, rtol=0)
    assert ref.logits.std() > 0.3  # far from uniform: a misplaced weight would show


def test_llama_attention_weights_match():
    hf = _llama(seed=3, attn_implementation="eager")
    ref, got = _attention_weights(hf, llama_from_hf(hf), ids_seed=4)
    for r, g in zip(ref, got, strict=True):
        assert g.shape == r.shape == (2, 4, 20, 20)  # one map per query head, shared key/value heads
        torch.testing.assert_close(g, r, atol=ATOL, rtol=0)


@pytest.mark.parametrize("variant", ["gqa-untied", "mqa-tied"])
@pytest.mark.parametrize("use_cache", [True, False], ids=["cached", "uncached"])
def test_llama_greedy_generation_matches_token_for_token(variant, use_cache):
    hf = _llama(seed=5, **LLAMA_VARIANTS[variant])
    _assert_greedy_generation_matches(hf, llama_from_hf(hf), prompt_seed=6, new_tokens=24, use_cache=use_cache)


def test_llama_left_padded_batch_matches_hf_position_ids():
    hf = _llama(seed=7)
    _assert_left_padded_batch_matches(hf, llama_from_hf(hf), ids_seed=8)


@pytest.mark.parametrize("overrides, message", [
    (dict(attention_bias=True), "attention_bias=True"),
    (dict(mlp_bias=True), "mlp_bias=True"),
    (dict(head_dim=32), "head_dim=32"),
    (dict(hidden_act="tanh"), "hidden_act='tanh'"),
    (dict(rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e4}), "rope_type='dynamic'"),
    (dict(rope_parameters={"rope_type": "yarn", "factor": 2.0, "rope_theta": 1e4}), "rope_type='yarn'"),
    (dict(rope_parameters={"rope_type": "llama3", "factor": 8.0, "rope_theta": 5e5, "low_freq_factor": 1.0,
                           "high_freq_factor": 4.0, "original_max_position_embeddings": 16}), "rope_type='llama3'"),
    (dict(rope_parameters={"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.5}),
     "partial_rotary_factor=0.5"),
])
def test_llama_refuses_what_it_cannot_convert_exactly(overrides, message):
    kw = dict(vocab_size=20, hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
              max_position_embeddings=8)
    hf = LlamaForCausalLM(LlamaConfig(**{**kw, **overrides}))
    with pytest.raises(ValueError, match=message):
        llama_from_hf(hf)


# -------------------------------------------------------------------------------------------- BERT
def _bert(cls, seed=0, hidden_act="gelu", pool=True, **kw):
    cfg = BertConfig(vocab_size=120, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=96, max_position_embeddings=24, type_vocab_size=3, layer_norm_eps=1e-12,
                     hidden_act=hidden_act, attn_implementation="eager", **kw)
    torch.manual_seed(seed)
    model = cls(cfg) if cls is not BertModel else BertModel(cfg, add_pooling_layer=pool)
    return _randomize(model, seed)


def _bert_batch(vocab=120, B=3, T=18, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (B, T), generator=g)
    types = torch.randint(0, 3, (B, T), generator=g)
    lengths = torch.tensor([T, T - 5, 7])
    mask = (torch.arange(T)[None] < lengths[:, None]).long()  # right padding, three different lengths
    ids = ids.masked_fill(mask == 0, 0)
    return ids, types, mask


def _check_encoder(ref_bert_out, got, mask):
    real = mask.bool()
    torch.testing.assert_close(got.hidden_states[real], ref_bert_out.last_hidden_state[real], atol=ATOL, rtol=0)
    for layer, (r, g) in enumerate(zip(ref_bert_out.attentions, got.attentions)):
        # padded keys get exactly 0 weight in ours and ~0 in HF; padded query rows are arbitrary
        torch.testing.assert_close(g[real[:, None, :, None].expand_as(g)], r[real[:, None, :, None].expand_as(r)],
                                   atol=ATOL, rtol=0, msg=lambda m, layer=layer: f"layer {layer}: {m}")


@pytest.mark.parametrize("hidden_act", ["gelu", "gelu_new", "silu"])
def test_bert_for_pretraining_matches(hidden_act):
    hf = _bert(BertForPreTraining, seed=2, hidden_act=hidden_act)
    ours = bert_from_hf(hf)
    assert isinstance(ours, BERT) and not ours.training
    c = ours.config
    assert (c.vocab_size, c.context_length, c.n_layers, c.n_heads, c.d_model, c.d_ff, c.type_vocab_size) == \
        (120, 24, 2, 4, 64, 96, 3)
    assert (c.norm_first, c.dropout, c.num_labels, c.pad_id, c.layer_norm_eps) == (False, 0.0, 0, None, 1e-12)
    ids, types, mask = _bert_batch()
    labels = torch.full_like(ids, -100)
    labels[:, 1:6] = ids[:, 1:6]
    nsp = torch.tensor([0, 1, 1])
    with torch.no_grad():
        ref = hf(ids, attention_mask=mask, token_type_ids=types, labels=labels, next_sentence_label=nsp,
                 output_attentions=True)
        base = hf.bert(ids, attention_mask=mask, token_type_ids=types, output_attentions=True)
        got = ours(ids, token_type_ids=types, attention_mask=mask, targets=labels, nsp_labels=nsp,
                   return_attention=True)
    _check_encoder(base, got, mask)
    real = mask.bool()
    torch.testing.assert_close(got.logits[real], ref.prediction_logits[real], atol=ATOL, rtol=0)
    torch.testing.assert_close(got.pooled, base.pooler_output, atol=ATOL, rtol=0)
    torch.testing.assert_close(got.nsp_logits, ref.seq_relationship_logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(got.loss, ref.loss, atol=ATOL, rtol=0)  # MLM + NSP, on real positions only


def test_bert_masked_lm_matches():
    hf = _bert(BertForMaskedLM, seed=3)
    assert hf.bert.pooler is None
    ours = bert_from_hf(hf)
    ids, types, mask = _bert_batch(seed=4)
    labels = torch.full_like(ids, -100)
    labels[:, 2:5] = 7
    with torch.no_grad():
        ref = hf(ids, attention_mask=mask, token_type_ids=types, labels=labels)
        got = ours(ids, token_type_ids=types, attention_mask=mask, targets=labels)
    real = mask.bool()
    torch.testing.assert_close(got.logits[real], ref.logits[real], atol=ATOL, rtol=0)
    torch.testing.assert_close(got.loss, ref.loss, atol=ATOL, rtol=0)


def test_bert_without_attention_mask_attends_to_padding_like_hf_unless_asked():
    hf = _bert(BertForMaskedLM, seed=5)
    ids, types, _ = _bert_batch(seed=6)
    ids[:, -2:] = hf.config.pad_token_id  # [PAD] tokens, and no attention_mask below
    with torch.no_grad():
        ref = hf(ids, token_type_ids=types).logits
        same = bert_from_hf(hf)(ids, token_type_ids=types).logits
        masked = bert_from_hf(hf, mask_padding=True)(ids, token_type_ids=types).logits
    torch.testing.assert_close(same, ref, atol=ATOL, rtol=0)
    assert (masked[:, :-2] - ref[:, :-2]).abs().max() > 1e-3  # real tokens no longer see the [PAD] keys


@pytest.mark.parametrize("pool", [True, False], ids=["pooler", "no-pooler"])
def test_bert_model_hidden_states_match(pool):
    hf = _bert(BertModel, seed=5, pool=pool)
    ours = bert_from_hf(hf)
    ids, types, mask = _bert_batch(seed=6)
    with torch.no_grad():
        ref = hf(ids, attention_mask=mask, token_type_ids=types, output_attentions=True)
        got = ours(ids, token_type_ids=types, attention_mask=mask, return_attention=True)
        no_types = ours(ids, attention_mask=mask).hidden_states
        ref_no_types = hf(ids, attention_mask=mask).last_hidden_state
    _check_encoder(ref, got, mask)
    real = mask.bool()
    torch.testing.assert_close(no_types[real], ref_no_types[real], atol=ATOL, rtol=0)  # default types = 0
    if pool:
        torch.testing.assert_close(got.pooled, ref.pooler_output, atol=ATOL, rtol=0)
        torch.testing.assert_close(ours.pooler.weight, hf.pooler.dense.weight, atol=0, rtol=0)
    else:
        assert ref.pooler_output is None  # ours keeps a randomly initialised pooler


def test_bert_sequence_classification_matches():
    hf = _bert(BertForSequenceClassification, seed=7, num_labels=3)
    ours = bert_from_hf(hf)
    assert ours.config.num_labels == 3 and ours.classifier is not None
    ids, types, mask = _bert_batch(seed=8)
    y = torch.tensor([2, 0, 1])
    with torch.no_grad():
        ref = hf(ids, attention_mask=mask, token_type_ids=types, labels=y)
        got = ours(ids, token_type_ids=types, attention_mask=mask, class_labels=y)
    torch.testing.assert_close(got.class_logits, ref.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(got.loss, ref.loss, atol=ATOL, rtol=0)


def test_bert_refusals():
    with pytest.raises(ValueError, match="position_embedding_type"):
        bert_from_hf(_bert(BertModel, position_embedding_type="relative_key"))
    with pytest.raises(ValueError, match="is_decoder"):
        bert_from_hf(_bert(BertModel, is_decoder=True))
    with pytest.raises(ValueError, match="hidden_act"):
        bert_from_hf(_bert(BertModel, hidden_act="quick_gelu"))
    untied = _bert(BertForMaskedLM, tie_word_embeddings=False)
    assert not torch.equal(untied.cls.predictions.decoder.weight, untied.bert.embeddings.word_embeddings.weight)
    with pytest.raises(ValueError, match="decoder weight differs"):
        bert_from_hf(untied)


# ---------------------------------------------------------------------------------- try_load_hf
def test_try_load_hf_offline_missing_model_returns_none(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert try_load_hf("llmbook-tests/no-such-model", "GPT2LMHeadModel") is None
    line = capsys.readouterr().out.strip()
    assert line.startswith("could not load 'llmbook-tests/no-such-model' (offline)") and "\n" not in line


def test_try_load_hf_without_network_tries_the_cache_only(monkeypatch, capsys):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(llmbook.interop, "hub_reachable", lambda timeout=3.0: False)
    assert try_load_hf("llmbook-tests/no-such-model", "GPT2LMHeadModel") is None
    line = capsys.readouterr().out.strip()
    assert line.startswith("could not load 'llmbook-tests/no-such-model' (no network)") and "\n" not in line


def test_hub_reachable_is_false_for_an_endpoint_that_refuses(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens there
    assert llmbook.interop.hub_reachable(timeout=1.0) is False


def test_try_load_hf_from_local_directory_then_convert(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hf = _gpt2(seed=12)
    hf.save_pretrained(tmp_path)
    loaded = try_load_hf(str(tmp_path), GPT2LMHeadModel)
    assert isinstance(loaded, GPT2LMHeadModel)
    ids = torch.randint(0, 100, (1, 16), generator=torch.Generator().manual_seed(13))
    with torch.no_grad():
        torch.testing.assert_close(gpt_from_hf(loaded.eval())(ids).logits, hf(ids).logits, atol=ATOL, rtol=0)


def test_package_imports_without_transformers():
    code = ("import sys; sys.modules['transformers'] = None\n"
            "import llmbook, llmbook.interop as i\n"
            "assert i.try_load_hf('gpt2', 'GPT2LMHeadModel') is None\n")
    src = str(Path(llmbook.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert "transformers is not installed" in r.stdout
