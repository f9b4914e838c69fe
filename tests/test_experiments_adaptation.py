"""The adaptation experiment of chapter 10 at a tiny size: its data, its answers and its records."""
import random

import pytest
import torch

from llmbook import pretrained
from llmbook.alignment import IGNORE
from llmbook.experiments import adaptation as ad


def test_answers_of_every_kind():
    kinds = ("reverse", "upper", "count", "first", "sort")
    assert [ad.answer(k, "cab") for k in kinds] == ["bac", "CAB", "3", "c", "abc"]


def test_instruction_batches_mask_the_prompt_and_skip_held_out_words():
    tok = ad.instruction_tokenizer()
    ids, labels = ad.instruction_batch(random.Random(0), tok, 16, mask_prompt=True, held_out=set())
    assistant = tok.token_to_id("<assistant>")
    for row, lab in zip(ids.tolist(), labels.tolist()):
        cut = row.index(assistant) + 1
        assert all(v == IGNORE for v in lab[:cut]) and lab[cut] != IGNORE
    words = {ad.random_word(random.Random(0)) for _ in range(1)}
    ids, _ = ad.instruction_batch(random.Random(0), tok, 16, mask_prompt=False, held_out=words)
    texts = [tok.decode(r) for r in ids.tolist()]
    assert not any(f" {w}<assistant>" in t for t in texts for w in words)


def test_play_windows_are_labelled_and_train_and_test_do_not_overlap():
    _, tok = pretrained.load("shakespeare-gpt")
    x_train, y_train, x_test, y_test = ad.play_windows(tok, 5, 3)
    assert x_train.shape == (20, ad.WINDOW) and x_test.shape == (12, ad.WINDOW)
    assert y_train.tolist() == [c for c in range(4) for _ in range(5)]
    assert not {tuple(r) for r in x_train.tolist()} & {tuple(r) for r in x_test.tolist()}


def test_comedy_score_prefers_twelfth_night_words():
    score = ad.ComedyScore()
    assert score("Sir Toby, the fool, and my lady Olivia") > 0 > score("Macduff, blood, murder and the witches")
    assert score("") == 0.0


def test_tiny_runs_record_what_the_chapter_reads():
    base = pretrained.load("shakespeare-gpt")
    methods = ad.compare_methods(seeds=(0,), steps=2, n_train=4, n_test=2, batch_size=4, base=base)
    d = base[0].config.d_model
    lora = 4 * 8 * ((d + 3 * d) + (d + d)) + (d * 4 + 4)  # in_proj (d -> 3d), out_proj (d -> d), the head
    assert methods["LoRA (r=8)"]["trainable"] == lora
    assert methods["linear probe"]["trainable"] == d * 4 + 4
    assert methods["full fine-tuning"]["trainable"] == base[0].num_parameters() + d * 4 + 4
    tiny = dict(n_prompts=4, n_eval_prompts=2, betas=(0.1,), epochs=2, best_of=2, n_new=6, batch_size=4, base=base)
    pref = ad.preference(seeds=(0, 1), **tiny)
    assert pref["best_of_n"]["n"] == [1, 2] and len(pref["dpo"]) == 1
    first = pref["best_of_n"]["true_reward_true_pick"]
    assert first[1] >= first[0]  # the best of two is at least as good as the first
    # the saved per-sample scores (2 prompts x 2 samples) give back the saved picks
    true, rm = (torch.tensor(pref["best_of_n"][k]) for k in ("true_scores", "rm_scores"))
    assert true.shape == rm.shape == (2, 2)
    picked = true.gather(1, rm.argmax(1, keepdim=True)).mean().item()
    assert picked == pytest.approx(pref["best_of_n"]["true_reward_rm_pick"][-1], abs=1e-4)
    assert true.max(1).values.mean().item() == pytest.approx(first[-1], abs=1e-4)
    run = pref["dpo"][0]
    assert run["seeds"] == pref["reference"]["seeds"] == [0, 1]
    for key in ("true_reward", "true_reward_sd", "rm_reward", "kl", "losses", "margins", "cpu_seconds"):
        assert len(run[key]) == 2, key
    assert len(pref["reference"]["true_reward"]) == len(pref["reference"]["true_reward_sd"]) == 2
    assert all(sd > 0 for sd in pref["reference"]["true_reward_sd"] + run["true_reward_sd"])
    for losses in run["losses"]:  # every seed starts at policy = reference
        torch.testing.assert_close(torch.tensor(losses[0]), torch.log(torch.tensor(2.0)))
    assert run["losses"][0][1] != run["losses"][1][1]  # the seeds are different runs
    # a seed's run does not depend on which other seeds ran: seed 1 alone gives the same numbers
    alone = ad.preference(seeds=(1,), **tiny)
    for key in ("true_reward", "kl", "losses"):
        assert alone["dpo"][0][key] == [run[key][1]], key
    assert alone["reference"]["true_reward"] == [pref["reference"]["true_reward"][1]]
    for bad in ((), (0, 0)):
        with pytest.raises(ValueError, match="seeds must be distinct"):
            ad.preference(seeds=bad, **tiny)


def test_main_refuses_an_unknown_part_before_running_anything():
    with pytest.raises(SystemExit, match=r"unknown parts \['nope'\]"):
        ad.main(["methods", "nope"])
