"""Checkers for the pretraining exercises (chapters 2 and 5): BERT's masked-language-model corruption,
the warm-up + cosine learning-rate schedule, and next-sentence-prediction pairs.

Used in chapters 2, Core concepts, and 5, Pretraining.
"""
from __future__ import annotations

import math

import torch

from ..train import TrainConfig, lr_at
from ._core import Case, Verdict, call_learner, case_generator, run_cases, run_probes, shape_text

# ----------------------------------------------------------------------------- MLM masking
MLM_VOCAB, MLM_MASK_ID, MLM_SPECIALS = 100, 4, (0, 1, 2, 3)  # [PAD] [CLS] [SEP] [UNK], then [MASK]


def _mlm_batch(B: int = 400, T: int = 512) -> torch.Tensor:
    """(B, T) ids like a BERT batch: [CLS] text [SEP] [PAD]..., with ordinary ids in [5, 100).

    About 180,000 ordinary tokens: enough that any correct implementation lands more than four
    standard deviations inside every tolerance (e.g. the 80% share of ~27,000 selected tokens).
    """
    g = case_generator(5)
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
    case = Case(f"ids {shape_text(ids)}, p={p}", (given, MLM_VOCAB, MLM_MASK_ID, list(MLM_SPECIALS), p,
                                              torch.Generator().manual_seed(seed)))
    with torch.random.fork_rng(devices=[]):  # the learner's own global RNG state is left as it was
        torch.manual_seed(global_seed)
        ok, result = call_learner(fn, case, copy=False)
    if ok and not torch.equal(given, ids):
        return False, ("your function modified ids in place; build inputs from a copy (ids.clone()), "
                       "the caller still needs the original ids")
    if ok and not (isinstance(result, (tuple, list)) and len(result) == 2
                   and all(isinstance(t, torch.Tensor) for t in result)):
        return False, f"your function returned a {type(result).__name__}; expected a pair (inputs, labels) of tensors"
    if ok and not (result[0].shape == ids.shape and result[1].shape == ids.shape):
        return False, (f"inputs and labels have shapes {shape_text(result[0])} and {shape_text(result[1])}; "
                       f"both must have the shape of ids, {shape_text(ids)}")
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


def _mlm_rules(fn, ids, special, p, seed):
    """(problem, hint) for the first of BERT's rules that fn breaks at this p, or None."""
    ok, result = _mlm_call(fn, ids, p, seed, global_seed=10)
    if not ok:
        return result, None
    inputs, labels = (t.detach().cpu() for t in result)
    return _mlm_label_problems(ids, inputs, labels, special) or _mlm_rate_problems(ids, inputs, labels, special, p)


def _mlm_same_seed(fn, ids, special, p, seed):
    """(problem, hint) if two calls with the same generator seed differ (the global RNG differs), or None."""
    results = []
    for global_seed in (11, 12):
        ok, result = _mlm_call(fn, ids, p, seed, global_seed)
        if not ok:
            return result, None
        results.append(result)
    (inputs_a, labels_a), (inputs_b, labels_b) = results
    if torch.equal(inputs_a, inputs_b) and torch.equal(labels_a, labels_b):
        return None
    return ("the two results differ", "use the generator argument for every random draw (torch.rand(..., "
            "generator=generator)), so that a seed reproduces the masking.")


def check_mlm_mask(fn, cases: str = "all") -> Verdict:
    """Check fn(ids, vocab_size, mask_id, special_ids, p, generator) -> (inputs, labels), BERT's rule.

    Statistical: on a batch of ~180,000 ordinary tokens, p = 15% ± 0.5% of them are selected
    (label = original id, -100 elsewhere), 80/10/10 ± 1% of those become mask_id / a random id /
    stay; specials are never selected; ids is not modified; the generator makes it reproducible.
    cases: "all", or the "visible" or "hidden" ones (p = 0.3, the same seed twice) of a graded assignment.
    """
    ids = _mlm_batch()
    special = torch.zeros_like(ids, dtype=torch.bool)
    for s in MLM_SPECIALS:
        special |= ids == s
    batch = f"ids {shape_text(ids)}, vocab_size={MLM_VOCAB}, mask_id={MLM_MASK_ID}, special_ids={list(MLM_SPECIALS)}"
    all_cases = [  # each case holds the test it runs and that test's (p, generator seed)
        Case(f"{batch}, p=0.15", (_mlm_rules, 0.15, 0)),
        Case(f"{batch}, p=0.3", (_mlm_rules, 0.3, 1), hidden=True),
        Case("the same generator seed twice", (_mlm_same_seed, 0.15, 7), hidden=True),
    ]
    return run_probes("check_mlm_mask", all_cases, lambda case: case.args[0](fn, ids, special, *case.args[1:]),
                      cases)


# ------------------------------------------------------------------ warm-up + cosine learning rate
def _lr_variant(step, peak_lr, warmup_steps, total_steps, min_lr_ratio, kind="right"):
    """The schedule of llmbook.train.lr_at, or one of the usual mistakes (kind)."""
    min_lr = peak_lr * min_lr_ratio
    if step < warmup_steps:
        if kind == "warmup_from_zero":
            return peak_lr * step / warmup_steps
        return peak_lr * (step + 1) / (warmup_steps + 1)
    if kind == "no_clamp":
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    elif step >= total_steps or total_steps == warmup_steps:
        return 0.0 if kind == "to_zero" else min_lr
    elif kind == "whole_run":
        progress = step / total_steps
    else:
        progress = (step - warmup_steps) / (total_steps - warmup_steps)
    if kind == "to_zero":
        return 0.5 * (1 + math.cos(math.pi * progress)) * peak_lr
    if kind == "no_half":
        return min_lr + math.cos(math.pi * progress) * (peak_lr - min_lr)
    if kind == "linear":
        return peak_lr - progress * (peak_lr - min_lr)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (peak_lr - min_lr)


def _lr_curve(fn, peak_lr, warmup_steps, total_steps, min_lr_ratio):
    """fn at every step 0 .. total_steps + 4, as a float64 tensor (beyond the end the rate must stay put)."""
    values = []
    for step in range(total_steps + 5):
        value = fn(step, peak_lr, warmup_steps, total_steps, min_lr_ratio)
        if isinstance(value, torch.Tensor):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"at step {step} it returned a {type(value).__name__}; return a float")
        values.append(float(value))
    return torch.tensor(values, dtype=torch.float64)


def _reference_lr(peak_lr, warmup_steps, total_steps, min_lr_ratio):
    cfg = TrainConfig(steps=total_steps, lr=peak_lr, warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio)
    return torch.tensor([lr_at(step, cfg) for step in range(total_steps + 5)], dtype=torch.float64)


def _lr_problem(got, expected):
    """None if the two curves agree (relative 1e-6), else the first step where they differ."""
    close = torch.isclose(got, expected, rtol=1e-6, atol=1e-12)
    if close.all():
        return None
    step = int((~close).nonzero()[0])
    return f"at step {step} it returns {got[step].item():.6g}, but the schedule gives {expected[step].item():.6g}"


_LR_MISTAKES = [
    ("the warm-up rises as peak_lr * (step + 1) / (warmup_steps + 1): with step / warmup_steps the first "
     "step gets learning rate 0 and changes nothing.", "warmup_from_zero"),
    ("the cosine runs over the steps after the warm-up: progress = (step - warmup_steps) / "
     "(total_steps - warmup_steps), which goes from 0 to 1.", "whole_run"),
    ("the rate decays to min_lr = min_lr_ratio * peak_lr, not to 0: lr = min_lr + 0.5 * (1 + cos(pi * "
     "progress)) * (peak_lr - min_lr).", "to_zero"),
    ("the cosine factor is 0.5 * (1 + cos(pi * progress)), which falls from 1 to 0; cos(pi * progress) "
     "alone goes down to -1.", "no_half"),
    ("after total_steps the rate stays at min_lr; the cosine must not be evaluated past progress = 1, "
     "where it rises again.", "no_clamp"),
    ("the decay follows a half cosine, 0.5 * (1 + cos(pi * progress)), not a straight line.", "linear"),
]


def check_lr_schedule(fn, cases: str = "all") -> Verdict:
    """Check fn(step, peak_lr, warmup_steps, total_steps, min_lr_ratio) -> learning rate (a float).

    The schedule of llmbook.train.lr_at: a linear warm-up peak_lr * (step + 1) / (warmup_steps + 1) for
    step < warmup_steps, then a half cosine from peak_lr down to min_lr_ratio * peak_lr at step
    total_steps, and min_lr_ratio * peak_lr from there on. Every step 0 .. total_steps + 4 is compared.
    cases: "all", or the "visible" or "hidden" ones (no warm-up, a run that is all warm-up) of a graded
    assignment.
    """
    settings = [(1e-3, 10, 100, 0.1), (6e-3, 30, 300, 0.1), (3e-4, 0, 50, 0.1), (1.0, 5, 20, 0.0),
                (2e-3, 8, 8, 0.5)]
    all_cases = [Case(f"peak_lr={lr:g}, warmup_steps={w}, total_steps={n}, min_lr_ratio={r:g}", (lr, w, n, r),
                      hidden=w in (0, n)) for lr, w, n, r in settings]

    def run(curve_fn):
        return lambda *args: _lr_curve(curve_fn, *args)

    mistakes = [(hint, run(lambda step, *a, kind=kind: _lr_variant(step, *a, kind=kind)))
                for hint, kind in _LR_MISTAKES]
    return run_cases("check_lr_schedule", run(fn), all_cases, _reference_lr, _lr_problem, mistakes,
                     fallback_hint="compare with llmbook.train.lr_at(step, TrainConfig(steps=total_steps, "
                                   "lr=peak_lr, warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio)).",
                     which=cases)


# ------------------------------------------------------------------------- next-sentence pairs
def _nsp_documents():
    """Twenty documents of unique sentences "d<doc>s<index>", of lengths 1 to 8 (some too short to start an
    IsNext pair), so that every sentence tells which document and place it comes from."""
    g = case_generator(6)
    lengths = [1] + torch.randint(2, 9, (19,), generator=g).tolist()
    return [[f"d{d}s{i}" for i in range(n)] for d, n in enumerate(lengths)]


def _nsp_call(fn, documents, n, seed):
    """fn(documents, n, seed) on a copy; (True, list of triples) or (False, what is wrong)."""
    given = [list(doc) for doc in documents]
    ok, result = call_learner(fn, Case("", (given, n, seed)), copy=False)
    if not ok:
        return False, result
    if given != documents:
        return False, "your function changed the documents it was given; leave them as they are"
    if not isinstance(result, (list, tuple)) or len(result) != n:
        what = f"{len(result)} items" if isinstance(result, (list, tuple)) else f"a {type(result).__name__}"
        return False, f"it returned {what}; expected a list of n = {n} triples (sentence_a, sentence_b, label)"
    for k, item in enumerate(result):
        if not (isinstance(item, (list, tuple)) and len(item) == 3):
            return False, f"item {k} is {item!r}; each item is a triple (sentence_a, sentence_b, label)"
        a, b, label = item
        if not (isinstance(a, str) and isinstance(b, str)):
            return False, f"item {k} is {item!r}; sentence_a and sentence_b must be sentences (str)"
        if isinstance(label, torch.Tensor) and label.numel() == 1:
            label = label.item()
        if isinstance(label, bool) or label not in (0, 1):
            return False, f"item {k} has label {label!r}; labels are 0 (IsNext) and 1 (NotNext)"
    return True, [(a, b, int(label.item() if isinstance(label, torch.Tensor) else label)) for a, b, label in result]


def _where(sentence):
    """(document, index) of a checker sentence "d<doc>s<index>"."""
    doc, index = sentence[1:].split("s")
    return int(doc), int(index)


def _nsp_problems(pairs, documents):
    """(problem, hint) for the first rule the pairs break, or None."""
    known = {s for doc in documents for s in doc}
    for a, b, _ in pairs:
        if a not in known or b not in known:
            bad = a if a not in known else b
            return (f"the pair ({a!r}, {b!r}) contains {bad!r}, which is not a sentence of the documents",
                    "take both sentences from the documents, unchanged.")
    is_next = [(a, b) for a, b, label in pairs if label == 0]
    not_next = [(a, b) for a, b, label in pairs if label == 1]
    share = len(is_next) / len(pairs)
    if abs(share - 0.5) > 0.03:
        hint = "make each pair IsNext with probability 1/2 (rng.random() < 0.5) and NotNext otherwise."
        return f"{100 * share:.0f}% of the pairs are IsNext (label 0), expected 50% ± 3%", hint
    consecutive = lambda a, b: _where(a)[0] == _where(b)[0] and _where(b)[1] == _where(a)[1] + 1  # noqa: E731
    if not_next and sum(consecutive(a, b) for a, b in not_next) > 0.9 * len(not_next) and \
            sum(consecutive(a, b) for a, b in is_next) < 0.1 * len(is_next):
        return ("the pairs labelled 1 are consecutive sentences and those labelled 0 are not",
                "label 0 means IsNext (B really follows A) and 1 means NotNext, as in llmbook.data.nsp_pairs.")
    for a, b in is_next:
        if not consecutive(a, b):
            (da, ia), (db, ib) = _where(a), _where(b)
            why = "from another document" if da != db else f"sentence {ib} of the same document, not {ia + 1}"
            return (f"the IsNext pair ({a!r}, {b!r}) has a B that is {why}",
                    "for IsNext, pick A among sentences that have a successor and take B = the very next "
                    "sentence of the same document.")
    for a, b in not_next:
        if _where(a)[0] == _where(b)[0]:
            hint = "for NotNext, take B from a different document, as BERT did: B then never follows A by accident."
            if consecutive(a, b):
                hint = ("a NotNext B must not be the sentence that really follows A; take it from a different "
                        "document, as BERT did.")
            return f"the NotNext pair ({a!r}, {b!r}) takes B from the same document as A", hint
    first_sentences = sum(_where(a)[1] == 0 for a, _, _ in pairs) / len(pairs)
    if first_sentences > 0.9:
        return ("almost every A is the first sentence of its document",
                "draw A at random among all sentences that have a successor, not only first sentences.")
    b_docs = {_where(b)[0] for _, b in not_next}
    if len(not_next) > 100 and len(b_docs) < 5:
        return (f"the NotNext sentences B come from only {len(b_docs)} documents",
                "draw the other document at random for every NotNext pair.")
    return None


def _nsp_rules(fn, documents):
    """(problem, hint) for the first rule that 4,000 pairs from seed 0 break, or None."""
    ok, pairs = _nsp_call(fn, documents, 4000, 0)
    return _nsp_problems(pairs, documents) if ok else (pairs, None)


def _nsp_seeds(fn, documents, seeds):
    """(True, [pairs for each seed]) or (False, (problem, None)) for the first call that goes wrong."""
    results = []
    for seed in seeds:
        ok, pairs = _nsp_call(fn, documents, 4000, seed)
        if not ok:
            return False, (pairs, None)
        results.append(pairs)
    return True, results


def _nsp_same_seed(fn, documents):
    ok, results = _nsp_seeds(fn, documents, (0, 0))
    if not ok:
        return results
    if results[0] != results[1]:
        return ("the two lists differ",
                "draw every random choice from random.Random(seed), so that a seed reproduces the pairs.")
    return None


def _nsp_other_seed(fn, documents):
    ok, results = _nsp_seeds(fn, documents, (0, 1))
    if not ok:
        return results
    if results[0] == results[1]:
        return ("the pairs are the same for both seeds",
                "use the seed argument (random.Random(seed)) instead of a fixed seed.")
    return None


def _nsp_few_documents(fn, documents):
    ok, pairs = _nsp_call(fn, documents[:3], 7, 5)
    return None if ok else (pairs, None)


def check_nsp_pairs(fn, cases: str = "all") -> Verdict:
    """Check fn(documents, n, seed) -> n triples (sentence_a, sentence_b, label), BERT's NSP pairs.

    documents is a list of documents, each a list of sentences. Label 0 (IsNext, half of the pairs):
    B is the sentence right after A in the same document. Label 1 (NotNext): B comes from another
    document. The same seed gives the same pairs. Checked on 4,000 pairs from twenty documents whose
    sentences name their document and position.
    cases: "all", or the "visible" or "hidden" ones (the seeds, three documents) of a graded assignment.
    """
    documents = _nsp_documents()
    all_cases = [  # each case holds the test it runs
        Case("20 documents of 1 to 8 sentences, n=4000, seed=0", (_nsp_rules,)),
        Case("the same seed twice", (_nsp_same_seed,), hidden=True),
        Case("seed=1 after seed=0", (_nsp_other_seed,), hidden=True),
        Case("3 documents, n=7, seed=5", (_nsp_few_documents,), hidden=True),
    ]
    return run_probes("check_nsp_pairs", all_cases, lambda case: case.args[0](fn, documents), cases)
