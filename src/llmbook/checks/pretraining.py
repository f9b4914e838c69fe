"""Checkers for the pretraining exercises (chapters 2 and 5): BERT's masked-language-model corruption."""
from __future__ import annotations

import torch

from ._core import Case, _call, _pass, _fail, _generator, _shape


# ----------------------------------------------------------------------------- MLM masking
MLM_VOCAB, MLM_MASK_ID, MLM_SPECIALS = 100, 4, (0, 1, 2, 3)  # [PAD] [CLS] [SEP] [UNK], then [MASK]


def _mlm_batch(B: int = 400, T: int = 512) -> torch.Tensor:
    """(B, T) ids like a BERT batch: [CLS] text [SEP] [PAD]..., with ordinary ids in [5, 100).

    About 180,000 ordinary tokens: enough that any correct implementation lands more than four
    standard deviations inside every tolerance (e.g. the 80% share of ~27,000 selected tokens).
    """
    g = _generator(5)
    ids = torch.randint(5, MLM_VOCAB, (B, T), generator=g)
    lengths = torch.randint(3 * T // 4, T + 1, (B,), generator=g)
    ids[:, 0] = 1  # [CLS]
    for row, n in enumerate(lengths.tolist()):
        ids[row, n - 1] = 2  # [SEP]
        ids[row, n:] = 0  # [PAD]
    return ids


def _mlm_call(fn, ids, p, seed, global_seed):
    """fn on ids with a fresh generator; the global RNG is reseeded inside and restored afterwards.

    Returns (True, (inputs, labels)) or (False, what went wrong), including an in-place edit of ids.
    """
    given = ids.clone()
    case = Case(f"ids {_shape(ids)}, p={p}", (given, MLM_VOCAB, MLM_MASK_ID, list(MLM_SPECIALS), p,
                                              torch.Generator().manual_seed(seed)))
    with torch.random.fork_rng(devices=[]):  # the learner's own global RNG state is left as it was
        torch.manual_seed(global_seed)
        ok, result = _call(fn, case, copy=False)
    if ok and not torch.equal(given, ids):
        return False, ("your function modified ids in place; build inputs from a copy (ids.clone()), "
                       "the caller still needs the original ids")
    if ok and not (isinstance(result, (tuple, list)) and len(result) == 2
                   and all(isinstance(t, torch.Tensor) for t in result)):
        return False, f"your function returned a {type(result).__name__}; expected a pair (inputs, labels) of tensors"
    if ok and not (result[0].shape == ids.shape and result[1].shape == ids.shape):
        return False, (f"inputs and labels have shapes {_shape(result[0])} and {_shape(result[1])}; "
                       f"both must have the shape of ids, {_shape(ids)}")
    return ok, result


def _share(part: torch.Tensor, whole: torch.Tensor) -> float:
    return part.sum().item() / max(whole.sum().item(), 1)


def _mlm_label_problems(ids, inputs, labels, special):
    """(problem, hint) for the first rule about labels or unselected positions that is broken."""
    selected = labels != -100
    if selected.float().mean() > 0.9:
        return (f"{100 * selected.float().mean():.0f}% of the labels are token ids",
                "labels must be -100 (ignored by cross_entropy) at every position that was not selected; "
                "only about p of the ordinary tokens get their original id as label.")
    if (selected & special).any():
        return ("special tokens were selected for prediction",
                "special tokens (ids in special_ids: [CLS], [SEP], [PAD]) must never be selected.")
    if not torch.equal(labels[selected], ids[selected]):
        return ("some labels differ from the original ids at selected positions",
                "labels must hold the original id where a token was selected (the model predicts it).")
    if not torch.equal(inputs[~selected], ids[~selected]):
        where = "special tokens were changed" if (inputs[special] != ids[special]).any() else \
            "some positions that are not selected (label -100) were changed"
        return (where, "only selected positions may change; everything else keeps its original id "
                       "and gets the label -100.")
    return None


def _mlm_rate_problems(ids, inputs, labels, special, p):
    """(problem, hint) for the first rate outside its tolerance: p ± 0.5%, then 80/10/10 ± 1%."""
    selected = labels != -100
    ordinary = ~special
    rate = _share(selected, ordinary)
    if abs(rate - p) > 0.005:
        hint = "select each ordinary token with probability p (torch.rand(ids.shape, generator=generator) < p)."
        if abs(rate - 0.8 * p) <= 0.005:
            hint = ("labels mark every selected token, also the 10% replaced by a random token and the 10% "
                    "left unchanged, not only the [MASK]ed ones.")
        elif p != 0.15 and abs(rate - 0.15) <= 0.005:
            hint = "use the argument p, not a fixed 0.15."
        return f"{100 * rate:.1f}% of the ordinary tokens were selected, expected {100 * p:.0f}% ± 0.5%", hint
    masked = selected & (inputs == MLM_MASK_ID)
    unchanged = selected & (inputs == ids)
    randomised = selected & ~masked & ~unchanged
    hint = ("of the selected tokens, BERT replaces 80% by [MASK] (mask_id), 10% by a random token, and "
            "leaves 10% unchanged; draw one number per position to choose.")
    for part, share, name in ((masked, 0.8, "became mask_id"), (randomised, 0.1, "became a random token"),
                              (unchanged, 0.1, "stayed unchanged")):
        got = _share(part, selected)
        if abs(got - share) > 0.01:
            return f"{100 * got:.1f}% of the selected tokens {name}, expected {100 * share:.0f}% ± 1%", hint
    replacements = inputs[randomised]
    if replacements.min() < 0 or replacements.max() >= MLM_VOCAB:
        return ("some random replacements lie outside [0, vocab_size)",
                "draw random ids with torch.randint(vocab_size, ..., generator=generator).")
    if replacements.unique().numel() < 20:
        return (f"the random replacements use only {replacements.unique().numel()} distinct ids",
                "each random replacement is its own draw from the vocabulary (torch.randint), not one fixed id.")
    return None


def check_mlm_mask(fn) -> bool:
    """Check fn(ids, vocab_size, mask_id, special_ids, p, generator) -> (inputs, labels), BERT's rule.

    Statistical: on a batch of ~180,000 ordinary tokens, p = 15% ± 0.5% of them are selected
    (label = original id, -100 elsewhere), 80/10/10 ± 1% of those become mask_id / a random id /
    stay; specials are never selected; ids is not modified; the generator makes it reproducible.
    """
    name = "check_mlm_mask"
    ids = _mlm_batch()
    special = torch.zeros_like(ids, dtype=torch.bool)
    for s in MLM_SPECIALS:
        special |= ids == s
    for number, (p, seed) in enumerate(((0.15, 0), (0.3, 1)), start=1):
        where = f"case {number} (ids {_shape(ids)}, vocab_size={MLM_VOCAB}, mask_id={MLM_MASK_ID}, " \
                f"special_ids={list(MLM_SPECIALS)}, p={p})"
        ok, result = _mlm_call(fn, ids, p, seed, global_seed=10)
        if not ok:
            return _fail(name, where, result)
        inputs, labels = (t.detach().cpu() for t in result)
        found = _mlm_label_problems(ids, inputs, labels, special) or \
            _mlm_rate_problems(ids, inputs, labels, special, p)
        if found:
            return _fail(name, where, *found)
    # the same generator seed must give the same answer, whatever the global RNG does
    ok_a, first = _mlm_call(fn, ids, 0.15, seed=7, global_seed=11)
    ok_b, second = _mlm_call(fn, ids, 0.15, seed=7, global_seed=12)
    if ok_a and ok_b and not (torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])):
        return _fail(name, "case 3 (the same generator seed twice)", "the two results differ",
                     "use the generator argument for every random draw (torch.rand(..., generator=generator)), "
                     "so that a seed reproduces the masking.")
    return _pass(name, 3)

