"""The pretraining checkers (MLM masking, chapter 2; learning-rate schedule and NSP pairs, chapter 5)
accept a correct answer and name the usual mistakes."""
import math
import random

import pytest
import torch
from checker_verdicts import assert_fails, assert_passes

from llmbook import checks
from llmbook.data import mask_tokens as package_mask_tokens
from llmbook.data import nsp_pairs
from llmbook.train import TrainConfig, lr_at


# ---------------------------------------------------------------------------------- MLM masking
def mask_tokens(ids, vocab_size, mask_id, special_ids, p=0.15, generator=None, *, shares=(0.8, 0.1),
                keep_specials=True, label_all=False):
    """A correct BERT masking rule; the keyword switches turn it into typical wrong ones."""
    special = torch.zeros_like(ids, dtype=torch.bool)
    for s in special_ids:
        special |= ids == s
    selected = torch.rand(ids.shape, generator=generator) < p
    if keep_specials:
        selected &= ~special
    action = torch.rand(ids.shape, generator=generator)
    to_mask = selected & (action < shares[0])
    to_random = selected & (action >= shares[0]) & (action < shares[0] + shares[1])
    random_ids = torch.randint(vocab_size, ids.shape, generator=generator)
    inputs = torch.where(to_mask, mask_id, ids)
    inputs = torch.where(to_random, random_ids, inputs)
    labels = ids.clone() if label_all else torch.where(selected, ids, -100)
    return inputs, labels


def test_mlm_checker_accepts_correct_rules(capsys):
    assert_passes(capsys, checks.check_mlm_mask, mask_tokens)


def test_mlm_checker_accepts_the_package_rule(capsys):
    assert_passes(capsys, checks.check_mlm_mask, package_mask_tokens)


@pytest.mark.parametrize("options, fragments", [
    ({"shares": (1.0, 0.0)}, ["100.0% of the selected tokens became mask_id", "80%", "10% unchanged"]),
    ({"keep_specials": False}, ["special tokens were selected", "never be selected"]),
    ({"label_all": True}, ["-100", "not selected"]),
])
def test_mlm_checker_names_the_mistake(capsys, options, fragments):
    wrong = lambda *args: mask_tokens(*args, **options)  # noqa: E731
    assert_fails(capsys, checks.check_mlm_mask, wrong, *fragments)


def test_mlm_checker_catches_fixed_p_global_rng_and_in_place_edits(capsys):
    assert_fails(capsys, checks.check_mlm_mask, lambda ids, V, m, s, p, g: mask_tokens(ids, V, m, s, 0.15, g),
                 "p=0.3", "use the argument p")
    assert_fails(capsys, checks.check_mlm_mask, lambda ids, V, m, s, p, g: mask_tokens(ids, V, m, s, p, None),
                 "same generator seed", "generator argument")

    def in_place(ids, vocab_size, mask_id, special_ids, p, generator):
        inputs, labels = mask_tokens(ids, vocab_size, mask_id, special_ids, p, generator)
        ids.copy_(inputs)
        return ids, labels

    assert_fails(capsys, checks.check_mlm_mask, in_place, "modified ids in place")
    assert_fails(capsys, checks.check_mlm_mask, lambda *args: None, "returned a NoneType")


# ------------------------------------------------------------------------------ learning rate
def schedule(step, peak_lr, warmup_steps, total_steps, min_lr_ratio, warmup="right", progress_over="decay",
             floor=True, half=True, clamp=True, shape="cosine"):
    """A learner's warm-up + cosine schedule, with switches for the usual mistakes."""
    min_lr = peak_lr * min_lr_ratio if floor else 0.0
    if step < warmup_steps:
        return peak_lr * (step + 1) / (warmup_steps + 1) if warmup == "right" else peak_lr * step / warmup_steps
    if clamp and (step >= total_steps or total_steps == warmup_steps):
        return min_lr
    if progress_over == "decay":
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    else:
        progress = step / total_steps
    if shape == "linear":
        return peak_lr - progress * (peak_lr - min_lr)
    factor = 0.5 * (1 + math.cos(math.pi * progress)) if half else math.cos(math.pi * progress)
    return min_lr + factor * (peak_lr - min_lr)


def test_lr_checker_accepts_the_schedule_and_the_package_function(capsys):
    assert_passes(capsys, checks.check_lr_schedule, schedule)

    def with_package(step, peak_lr, warmup_steps, total_steps, min_lr_ratio):
        cfg = TrainConfig(steps=total_steps, lr=peak_lr, warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio)
        return lr_at(step, cfg)

    assert_passes(capsys, checks.check_lr_schedule, with_package)


@pytest.mark.parametrize("options, fragments", [
    ({"warmup": "from_zero"}, ["at step 0 it returns 0", "(step + 1) / (warmup_steps + 1)"]),
    ({"progress_over": "whole_run"}, ["step 10", "(step - warmup_steps)"]),
    ({"floor": False}, ["decays to min_lr", "not to 0"]),
    ({"half": False}, ["0.5 * (1 + cos(pi * progress))", "-1"]),
    ({"clamp": False}, ["at step 101", "stays at min_lr"]),
    ({"shape": "linear"}, ["half cosine", "not a straight line"]),
])
def test_lr_checker_names_the_mistake(capsys, options, fragments):
    assert_fails(capsys, checks.check_lr_schedule, lambda *args: schedule(*args, **options), *fragments)


def test_lr_checker_reports_a_wrong_return_type_and_exceptions(capsys):
    assert_fails(capsys, checks.check_lr_schedule, lambda *args: [schedule(*args)], "returned a list",
                 "return a float")

    def no_guard(step, peak_lr, warmup_steps, total_steps, min_lr_ratio):
        if step < warmup_steps:
            return peak_lr * (step + 1) / (warmup_steps + 1)
        progress = (min(step, total_steps) - warmup_steps) / (total_steps - warmup_steps)  # 0 / 0 if equal
        min_lr = peak_lr * min_lr_ratio
        return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (peak_lr - min_lr)

    line = assert_fails(capsys, checks.check_lr_schedule, no_guard, "case 5", "ZeroDivisionError")
    assert "Traceback" not in line


# ---------------------------------------------------------------------------------- NSP pairs
def pairs_with(documents, n, seed, negatives="other_document", p_next=0.5, labels=(0, 1), a_from="any"):
    """A learner's NSP pairs, with switches for the usual mistakes."""
    rng = random.Random(seed)
    starts = [(d, i) for d, doc in enumerate(documents) for i in range(len(doc) - 1)]
    if a_from == "first":
        starts = [(d, 0) for d, doc in enumerate(documents) if len(doc) > 1]
    flat = [s for doc in documents for s in doc]
    out = []
    for _ in range(n):
        d, i = rng.choice(starts)
        a = documents[d][i]
        if rng.random() < p_next:
            out.append((a, documents[d][i + 1], labels[0]))
        elif negatives == "same_document":
            out.append((a, rng.choice(documents[d]), labels[1]))
        elif negatives == "anywhere":
            out.append((a, rng.choice(flat), labels[1]))
        else:
            other = rng.choice([k for k in range(len(documents)) if k != d and documents[k]])
            out.append((a, rng.choice(documents[other]), labels[1]))
    return out


def test_nsp_checker_accepts_the_rule_and_the_package_function(capsys):
    assert_passes(capsys, checks.check_nsp_pairs, pairs_with)
    assert_passes(capsys, checks.check_nsp_pairs, nsp_pairs)


@pytest.mark.parametrize("options, fragments", [
    ({"labels": (1, 0)}, ["labelled 1 are consecutive", "label 0 means IsNext"]),
    ({"negatives": "same_document"}, ["takes B from the same document", "different document"]),
    ({"negatives": "anywhere"}, ["from the same document as A", "different document"]),
    ({"p_next": 0.8}, ["80% of the pairs are IsNext", "probability 1/2"]),
    ({"a_from": "first"}, ["first sentence of its document", "at random"]),
])
def test_nsp_checker_names_the_mistake(capsys, options, fragments):
    assert_fails(capsys, checks.check_nsp_pairs, lambda d, n, seed: pairs_with(d, n, seed, **options), *fragments)


def test_nsp_checker_catches_a_fixed_seed_a_wrong_shape_and_a_changed_input(capsys):
    assert_fails(capsys, checks.check_nsp_pairs, lambda d, n, seed: pairs_with(d, n, 0), "case 3",
                 "same for both seeds")
    assert_fails(capsys, checks.check_nsp_pairs, lambda d, n, seed: pairs_with(d, n, seed)[:-1], "3999 items")
    assert_fails(capsys, checks.check_nsp_pairs, lambda d, n, seed: [(a, b) for a, b, _ in pairs_with(d, n, seed)],
                 "triple")
    assert_fails(capsys, checks.check_nsp_pairs,
                 lambda d, n, seed: [(a, b, "IsNext") for a, b, _ in pairs_with(d, n, seed)], "labels are 0")

    def shuffles_documents(documents, n, seed):
        random.Random(seed).shuffle(documents)
        return pairs_with(documents, n, seed)

    assert_fails(capsys, checks.check_nsp_pairs, shuffles_documents, "changed the documents")
