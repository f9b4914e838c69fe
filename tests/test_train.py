"""Tests for llmbook.train: schedule, optimizer groups, the training loop, clipping, checkpoints."""
import copy
import math
import os
import pickle
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from llmbook import BERT, GPT, BERTConfig, GPTConfig, Seq2Seq, Seq2SeqConfig
from llmbook.train import (
    History,
    TrainConfig,
    load_checkpoint,
    load_state_into,
    lr_at,
    make_optimizer,
    read_checkpoint,
    save_checkpoint,
    train,
)

QUIET = dict(progress=False, log_every=0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: a second thread adds synchronisation, not speed, and on a busy
    machine an oversubscribed thread pool makes a step 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_gpt(**kw):
    cfg = dict(vocab_size=12, context_length=16, n_layers=2, n_heads=4, d_model=32)
    return GPT(GPTConfig(**{**cfg, **kw}))


def lm_batch(B=4, T=8, vocab=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(0, vocab, (B, T + 1), generator=g)
    return seq[:, :-1], seq[:, 1:]


# ------------------------------------------------------------------------------ lr schedule
def test_lr_warms_up_linearly_then_cosine_decays_to_min():
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1e-3, min_lr_ratio=0.1)
    lrs = [lr_at(s, cfg) for s in range(cfg.steps + 1)]
    assert lrs[0] < 0.1 * cfg.lr  # ~0 at the start
    rises = [b - a for a, b in zip(lrs[:10], lrs[1:11])]
    assert max(rises) - min(rises) < 1e-12 and min(rises) > 0  # linear up to ...
    assert lrs[10] == pytest.approx(cfg.lr)  # ... lr at warmup_steps
    decay = lrs[10:]
    assert all(b < a for a, b in zip(decay, decay[1:]))  # strictly decreasing after warm-up
    assert lrs[55] == pytest.approx(0.55e-3)  # cosine midpoint: halfway between lr and min
    assert lrs[100] == pytest.approx(1e-4) and lr_at(500, cfg) == pytest.approx(1e-4)


def test_default_warmup_is_a_tenth_of_the_steps():
    assert TrainConfig(steps=250).warmup_steps == 25


def test_lr_without_warmup_starts_at_peak_and_rejects_negative_step():
    cfg = TrainConfig(steps=10, warmup_steps=0, lr=2e-3, min_lr_ratio=0.0)
    assert lr_at(0, cfg) == pytest.approx(2e-3) and lr_at(10, cfg) == 0.0
    with pytest.raises(ValueError, match="step=-1"):
        lr_at(-1, cfg)


@pytest.mark.parametrize("bad, field", [(dict(warmup_steps=20), "warmup_steps=20"), (dict(lr=0.0), "lr=0.0"),
                                        (dict(grad_clip=0.0), "grad_clip=0.0"),
                                        (dict(min_lr_ratio=1.5), "min_lr_ratio=1.5")])
def test_train_config_rejects_bad_settings(bad, field):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{"steps": 10, **bad})


# ------------------------------------------------------------------------------- optimizer
@pytest.mark.parametrize("model", [tiny_gpt(), BERT(BERTConfig(vocab_size=20, n_layers=1, d_model=32))],
                         ids=["GPT", "BERT"])
def test_biases_and_layernorms_are_not_decayed(model):
    opt = make_optimizer(model, TrainConfig(steps=1, weight_decay=0.1))
    groups = {g["name"]: g for g in opt.param_groups}
    decay = {id(p) for p in groups["decay"]["params"]}
    no_decay = {id(p) for p in groups["no_decay"]["params"]}
    assert groups["decay"]["weight_decay"] == 0.1 and groups["no_decay"]["weight_decay"] == 0.0
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            assert id(m.weight) in no_decay and id(m.bias) in no_decay
        if isinstance(m, nn.Linear):
            assert id(m.weight) in decay
            assert m.bias is None or id(m.bias) in no_decay
    assert id(model.tok_emb.weight) in decay  # embeddings decay (see weight_decay_split)
    # every parameter exactly once: a tied weight must not be updated twice per step
    n_listed = len(groups["decay"]["params"]) + len(groups["no_decay"]["params"])
    assert n_listed == len(decay | no_decay) == len(list(model.parameters()))


# ------------------------------------------------------------------------------ train loop
N_COPY, SEP = 5, 10  # copy task: symbols 0-9, then SEP, then the same symbols again


def copy_sequences(x):
    """x (B, N) -> (idx, targets) for "x SEP x"; only the copied half is scored."""
    seq = torch.cat([x, torch.full((x.size(0), 1), SEP), x], dim=1)
    idx, targets = seq[:, :-1], seq[:, 1:].clone()
    targets[:, :N_COPY] = -100  # the first half is random: nothing to learn there
    return idx, targets


def test_tiny_gpt_learns_to_copy_and_generalises():
    torch.manual_seed(0)
    held_out = torch.randint(0, 10, (64, N_COPY), generator=torch.Generator().manual_seed(123))
    g = torch.Generator().manual_seed(1)

    def get_batch(step):
        x = torch.randint(0, 10, (64, N_COPY), generator=g)
        seen = (x[:, None, :] == held_out[None]).all(-1).any(-1)
        while seen.any():  # held-out sequences are never trained on
            x[seen] = torch.randint(0, 10, (int(seen.sum()), N_COPY), generator=g)
            seen = (x[:, None, :] == held_out[None]).all(-1).any(-1)
        return copy_sequences(x)

    model = GPT(GPTConfig(vocab_size=12, context_length=2 * N_COPY + 1, n_layers=2, n_heads=4, d_model=64))
    hist = train(model, get_batch, TrainConfig(steps=150, lr=3e-3, warmup_steps=15, device="cpu", **QUIET))
    assert hist.loss[0] > 1.0 and hist.loss[-1] < 0.05
    prompt = torch.cat([held_out, torch.full((64, 1), SEP)], dim=1)
    out = model.generate(prompt, N_COPY, temperature=0)
    assert torch.equal(out[:, N_COPY + 1:], held_out)


def test_history_records_every_step_and_counts_tokens():
    cfg = TrainConfig(steps=5, warmup_steps=2, lr=1e-3, device="cpu", **QUIET)
    hist = train(tiny_gpt(), lambda step: lm_batch(B=3, T=7, seed=step), cfg)
    assert isinstance(hist, History)
    assert hist.step == [0, 1, 2, 3, 4]
    assert hist.lr == [lr_at(s, cfg) for s in range(5)]
    assert len(hist.loss) == len(hist.grad_norm) == 5
    assert all(isinstance(v, float) and math.isfinite(v) for v in hist.loss + hist.grad_norm)
    assert hist.tokens == 5 * 3 * 7 and hist.tokens_per_s > 0


def test_dict_batches_and_eval_fn():
    model = BERT(BERTConfig(vocab_size=20, context_length=16, n_layers=1, d_model=32))
    ids = torch.randint(3, 20, (4, 10))
    labels = ids.masked_fill(torch.rand(4, 10) < 0.5, -100)
    seen = []

    def eval_fn(m):
        seen.append((m.training, torch.is_grad_enabled()))
        return {"mlm_loss": m(input_ids=ids, targets=labels).loss.item()}

    cfg = TrainConfig(steps=5, warmup_steps=1, lr=1e-3, eval_every=2, device="cpu", **QUIET)
    hist = train(model, lambda step: {"input_ids": ids, "targets": labels}, cfg, eval_fn=eval_fn)
    assert [e["step"] for e in hist.evals] == [1, 3, 4]  # every 2 steps, and after the last
    assert all(math.isfinite(e["mlm_loss"]) for e in hist.evals)
    assert seen == [(False, False)] * 3  # eval mode, no gradients
    assert model.training  # training mode is restored afterwards


def test_seq2seq_tuple_batch_trains_and_progress_bar_runs():
    model = Seq2Seq(Seq2SeqConfig(src_vocab_size=16, tgt_vocab_size=16, context_length=12, d_model=32))
    src = torch.randint(3, 16, (4, 6))
    tgt = torch.cat([torch.ones(4, 1, dtype=torch.long), src], dim=1)  # bos + copy of the source
    batch = (src, tgt[:, :-1], tgt[:, 1:])
    hist = train(model, lambda step: batch, TrainConfig(steps=20, warmup_steps=2, lr=3e-3, device="cpu",
                                                        progress=True, log_every=5))
    assert hist.loss[-1] < hist.loss[0]


def test_batch_without_targets_is_rejected():
    with pytest.raises(ValueError, match="no .loss"):
        train(tiny_gpt(), lambda step: (lm_batch()[0],), TrainConfig(steps=1, warmup_steps=0, **QUIET))


# ------------------------------------------------------------------------------- clipping
class ScaledLoss(nn.Module):
    """Wraps a model and multiplies its loss: huge gradients without changing the model."""

    def __init__(self, model, factor):
        super().__init__()
        self.model, self.factor = model, factor

    def forward(self, *args):
        return SimpleNamespace(loss=self.model(*args).loss * self.factor)


def grad_norm(params):
    return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None])).item()


@pytest.mark.parametrize("grad_clip", [0.5, None])
def test_recorded_grad_norm_is_pre_clip_and_update_uses_clipped(grad_clip):
    torch.manual_seed(0)
    model = ScaledLoss(tiny_gpt(), factor=1e4)
    batch = lm_batch()
    reference = copy.deepcopy(model)  # the first step's gradient, computed independently
    reference(*batch).loss.backward()
    expected_pre = grad_norm(reference.parameters())
    post = []  # the gradient norm AdamW actually sees, taken by a global pre-step hook
    hook = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: post.append(grad_norm(p for g in opt.param_groups for p in g["params"])))
    try:
        hist = train(model, lambda step: batch, TrainConfig(steps=3, warmup_steps=0, lr=1e-3, grad_clip=grad_clip,
                                                            device="cpu", **QUIET))
    finally:
        hook.remove()
    assert hist.grad_norm[0] == pytest.approx(expected_pre, rel=1e-4)
    assert len(post) == 3 and min(hist.grad_norm) > 10  # the scaled loss gives huge gradients
    if grad_clip is None:
        assert post == pytest.approx(hist.grad_norm, rel=1e-5)
    else:
        assert all(p <= grad_clip * (1 + 1e-5) for p in post)
        assert post == pytest.approx([grad_clip] * 3, rel=1e-3)


# ----------------------------------------------------------------------------- checkpoints
def gpt_case():
    return GPT(GPTConfig(vocab_size=30, context_length=16, n_layers=2, n_heads=2, d_model=32, pos_encoding="rope")), \
        (torch.randint(0, 30, (2, 9)),)


def bert_case():
    model = BERT(BERTConfig(vocab_size=30, context_length=16, n_layers=2, d_model=32, num_labels=3))
    ids = torch.randint(1, 30, (2, 9))
    return model, (ids, torch.randint(0, 2, (2, 9)), torch.ones(2, 9, dtype=torch.long))


def seq2seq_case():
    model = Seq2Seq(Seq2SeqConfig(src_vocab_size=20, tgt_vocab_size=25, context_length=16, d_model=32, n_heads=2))
    return model, (torch.randint(3, 20, (2, 7)), torch.randint(3, 25, (2, 5)))


@pytest.mark.parametrize("case", [gpt_case, bert_case, seq2seq_case], ids=["GPT", "BERT", "Seq2Seq"])
def test_checkpoint_round_trip_gives_identical_logits(case, tmp_path):
    torch.manual_seed(0)
    model, inputs = case()
    model.eval()
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, step=7, notes={"data": "copy", "losses": [1.5, 0.25]})
    torch.manual_seed(1)  # the rebuilt model's random init differs: only loading can match
    loaded = load_checkpoint(path, expected_config=model.config)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(*inputs).logits, model(*inputs).logits)
    assert read_checkpoint(path)["extra"] == {"step": 7, "notes": {"data": "copy", "losses": [1.5, 0.25]}}


def test_tied_weights_stay_tied_after_loading(tmp_path):
    model = tiny_gpt()
    save_checkpoint(tmp_path / "gpt.pt", model)
    loaded = load_checkpoint(tmp_path / "gpt.pt")
    assert loaded.lm_head.weight is loaded.tok_emb.weight
    x = lm_batch()[0]
    before = loaded(x).logits
    with torch.no_grad():
        loaded.tok_emb.weight[:, 0] += 1.0
    assert torch.equal(loaded.lm_head.weight[:, 0], model.lm_head.weight[:, 0] + 1.0)
    assert not torch.allclose(loaded(x).logits, before)
    untied = tiny_gpt(tie_weights=False)
    save_checkpoint(tmp_path / "untied.pt", untied)
    assert load_checkpoint(tmp_path / "untied.pt").lm_head.weight is not untied.tok_emb.weight


def test_checkpoint_with_differing_tied_tensors_is_refused(tmp_path):
    model = tiny_gpt()
    state = {k: v.clone() for k, v in model.state_dict().items()}  # clones break the sharing
    state["lm_head.weight"] += 1.0
    torch.save({"model_class": "GPT", "config": {**model.config.__dict__}, "state_dict": state, "extra": {}},
               tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="lm_head.weight and tok_emb.weight are tied"):
        load_checkpoint(tmp_path / "bad.pt")


class RunsCode:
    """Unpickling this object calls os.system: what a malicious checkpoint could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickled_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model_class": "GPT", "config": {}, "state_dict": {}, "extra": RunsCode(marker)}, path)
    with pytest.raises(ValueError, match="not a plain-data checkpoint") as info:
        load_checkpoint(path)
    assert isinstance(info.value.__cause__, pickle.UnpicklingError)
    with pytest.raises(ValueError, match="not a plain-data checkpoint"):
        load_state_into(tiny_gpt(), path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is live: a full unpickle does run it
    assert marker.exists()


def test_save_refuses_extra_that_is_not_plain_data(tmp_path):
    with pytest.raises(TypeError, match=r"extra\['tok'\] is a RunsCode"):
        save_checkpoint(tmp_path / "x.pt", tiny_gpt(), tok=RunsCode("x"))


def test_load_state_into_another_config_names_the_field(tmp_path):
    save_checkpoint(tmp_path / "gpt.pt", tiny_gpt(n_layers=2))
    target = tiny_gpt(n_layers=3)
    with pytest.raises(ValueError, match=r"another config.*n_layers: 2 vs 3"):
        load_state_into(target, tmp_path / "gpt.pt")
    with pytest.raises(ValueError, match="holds a GPT, not a BERT"):
        load_state_into(BERT(BERTConfig(vocab_size=12, n_layers=1, d_model=32)), tmp_path / "gpt.pt")
    same = tiny_gpt(n_layers=2)
    assert load_state_into(same, tmp_path / "gpt.pt") is same
    assert torch.equal(same.tok_emb.weight, torch.load(tmp_path / "gpt.pt")["state_dict"]["tok_emb.weight"])


def test_load_checkpoint_checks_expected_config(tmp_path):
    save_checkpoint(tmp_path / "gpt.pt", tiny_gpt(d_model=32))
    with pytest.raises(ValueError, match=r"d_ff: 128 vs 256; d_model: 32 vs 64"):
        load_checkpoint(tmp_path / "gpt.pt", expected_config=GPTConfig(vocab_size=12, context_length=16, n_layers=2,
                                                                        n_heads=4, d_model=64))


def test_checkpoint_from_before_the_renames_names_the_renamed_key(tmp_path):
    """A checkpoint saved when GPTConfig had block_size (now context_length) is refused with a hint."""
    model = tiny_gpt()
    old_config = {("block_size" if k == "context_length" else k): v for k, v in model.config.__dict__.items()}
    torch.save({"model_class": "GPT", "config": old_config, "state_dict": model.state_dict(), "extra": {}},
               tmp_path / "old.pt")
    with pytest.raises(ValueError, match=r"no fields \['block_size'\] \(renamed .*block_size -> context_length"):
        load_checkpoint(tmp_path / "old.pt")
