"""The chapter 5 BERT experiment at a tiny size: plain-data results, pairs built as NSP wants them,
masking that never touches specials, and a fine-tuning that leaves the pretrained model alone."""
import json

import pytest
import torch

from llmbook.data import parse_toy_sentence
from llmbook.experiments import bert_pretraining as bp


@pytest.fixture(scope="module")
def tokenizer():
    return bp.make_tokenizer()


def test_every_word_is_one_token_and_unused_ids_are_never_drawn(tokenizer):
    ids = bp.special_ids(tokenizer)
    excluded = set(bp.never_drawn(tokenizer))
    assert {ids["[PAD]"], ids["[CLS]"], ids["[SEP]"]} <= excluded and ids["[MASK]"] not in excluded
    for word in "the cats that the dog chases are happy .".split():
        assert len(tokenizer.encode(" " + word if word != "." else word)) == 1
        assert tokenizer.encode(" " + word if word != "." else word)[0] not in excluded


def test_topic_documents_share_their_subject():
    docs = bp.topic_documents(400, seed=3)
    assert docs and all(len(doc) == 5 for doc in docs)
    for doc in docs:
        assert len({parse_toy_sentence(s).subject for s in doc}) == 1


def test_encoded_pairs_have_segments_and_labels(tokenizer):
    pairs = [("the cat sleeps.", "the cats run.", 0), ("a dog waits.", "two birds sing near the river.", 1)]
    batch = bp.encode_pairs(tokenizer, pairs)
    ids = bp.special_ids(tokenizer)
    row = batch["input_ids"][1].tolist()
    assert row[0] == ids["[CLS]"] and row.count(ids["[SEP]"]) == 2
    first_sep = row.index(ids["[SEP]"])
    segments = batch["token_type_ids"][1]
    assert segments[: first_sep + 1].eq(0).all() and segments[first_sep + 1].item() == 1
    assert batch["input_ids"][0, -1].item() == ids["[PAD]"]  # the shorter pair is padded
    assert batch["nsp_labels"].tolist() == [0, 1]


def test_pretraining_batches_mask_afresh_and_keep_specials(tokenizer):
    data = bp.encode_pairs(tokenizer, [("the cat sleeps.", "the cats run.", 0)] * 64)
    get_batch = bp.pretraining_batches(tokenizer, data, "mlm+nsp", 16, torch.Generator().manual_seed(0))
    first, second = get_batch(0), get_batch(1)
    ids = bp.special_ids(tokenizer)
    for batch in (first, second):
        selected = batch["targets"] != -100
        specials = torch.tensor([ids["[CLS]"], ids["[SEP]"], ids["[PAD]"]])
        assert not torch.isin(batch["targets"][selected], specials).any()
        assert "nsp_labels" in batch
    assert not torch.equal(first["input_ids"], second["input_ids"])  # dynamic masking
    assert "nsp_labels" not in bp.pretraining_batches(tokenizer, data, "mlm", 4, torch.Generator())(0)
    with pytest.raises(ValueError, match="objective"):
        bp.pretraining_batches(tokenizer, data, "nsp only", 4, torch.Generator())


def test_run_at_a_tiny_size_returns_plain_data(tokenizer):
    out = bp.run(seeds=(0,), finetune_seeds=(0, 1), pretrain_steps=6, finetune_steps=3, n_train=32, eval_every=3,
                 n_sentences=400, n_pairs=200)
    json.dumps(out)  # plain data only
    assert set(out["downstream"]) == {"mlm+nsp", "mlm", "scratch"}
    for per_pretraining_seed in out["downstream"].values():  # [[accuracy per fine-tuning seed]]
        assert len(per_pretraining_seed) == 1 and len(per_pretraining_seed[0]) == 2
        assert all(0.0 <= a <= 1.0 for a in per_pretraining_seed[0])
    history = out["histories"]["mlm+nsp"]
    assert len(history["loss"]) == 6 and [e["step"] for e in history["evals"]] == [2, 5]
    assert set(history["evals"][0]) == {"step", "mlm_loss", "mlm_accuracy", "nsp_accuracy"}
    assert set(out["nsp_probe"]) == {"IsNext", "NotNext, other topic", "NotNext, same topic", "A and B swapped"}


def test_finetuning_leaves_the_pretrained_model_unchanged(tokenizer):
    torch.manual_seed(0)
    model = bp.BERT(bp.bert_config(tokenizer))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    accuracy = bp.finetune_agreement(model, tokenizer, steps=2, n_train=16)
    assert 0.0 <= accuracy <= 1.0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
