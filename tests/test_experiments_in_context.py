"""The in-context-learning experiment of chapter 6 at a tiny size: its data, prompts and results."""
import random

import torch

from llmbook.experiments import in_context as ic
from llmbook.prompts import few_shot_prompt


def test_prompt_format_and_tokenizer_round_trip():
    prompt = few_shot_prompt([("c", "q"), ("a", "w")], "c")
    assert prompt == "c>q a>w c>"
    tok = ic.tokenizer()
    assert tok.decode(tok.encode(prompt)) == prompt and tok.token_to_id(ic.BOS) == 0


def test_one_pair_in_five_is_held_out_for_every_input_letter():
    for x in ic.LETTERS:
        assert sum(ic.held_out_pair(x, y) for y in ic.LETTERS) in (5, 6)
    rng = random.Random(0)
    for held_out in (False, True):
        mapping = ic.random_mapping(rng, held_out=held_out)
        assert len(mapping) == ic.N_INPUTS and all(ic.held_out_pair(x, y) == held_out for x, y in mapping.items())


def test_training_batch_targets_are_the_answers_after_each_arrow():
    tok = ic.tokenizer()
    x, y = ic.training_batch(random.Random(1), tok, batch_size=3, k=5)
    assert x.shape == y.shape == (3, 4 * 5 - 1)
    for row, targets in zip(x.tolist(), y.tolist()):
        text = tok.decode(row)
        assert text.startswith(ic.BOS)
        scored = [(i, t) for i, t in enumerate(targets) if t != -100]
        assert len(scored) == 5
        for i, t in scored:
            assert row[i] == tok.token_to_id(ic.ARROW)
            assert not ic.held_out_pair(tok.decode([row[i - 1]]), tok.decode([t]))  # training pairs only
        pairs = {}
        for i, t in scored:  # one prompt, one mapping: an input letter always gets the same answer
            assert pairs.setdefault(row[i - 1], t) == t


def test_eval_prompts_show_the_query_when_asked():
    for k in (1, 2, 4):
        for prompt, answer in ic.eval_prompts(k, 50, include_query=True):
            query = prompt[-2]
            assert f"{query}>{answer}" in prompt[:-2] and prompt.count(">") == k + 1
    zero = ic.eval_prompts(0, 5, include_query=True)
    assert all(len(p) == 2 and p.endswith(">") for p, _ in zero)


def test_run_at_a_tiny_size_returns_plain_results():
    torch.set_num_threads(1)
    results = ic.run(steps=3, batch_size=4, n_eval=5)
    assert len(results["loss"]) == 3 and results["shots"] == list(ic.SHOTS)
    for part in ("held_out", "seen"):
        for setting in ("query shown", "random examples"):
            values = results[part][setting]
            assert len(values) == len(ic.SHOTS) and all(0.0 <= v <= 1.0 for v in values)
    model, again = ic.train_and_measure(steps=3, batch_size=4, n_eval=5)
    assert again["loss"] == results["loss"]  # seeded: the same run twice
    assert ic.answers(model, ic.tokenizer(), ["a>b a>"])[0] in ic.tokenizer().chars
