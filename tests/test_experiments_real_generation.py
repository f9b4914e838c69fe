"""The decoding and prompting measurements of chapter 6 at a tiny size."""
import torch

from llmbook import corpora, pretrained
from llmbook.experiments import real_generation as rg


def test_repeated_line_share_counts_lines_seen_earlier_in_the_poem():
    assert rg.repeated_line_share("床前明月光，床前明月光。\n举头望明月，床前明月光。") == 0.5
    assert rg.repeated_line_share("") == 0.0


def test_speeches_find_upper_case_and_abbreviated_speaker_names():
    text = "x\n\nHAMLET.\nTo be, or not to be.\n\nHor.\nMy lord.\n\nGHOST.\n[Beneath] Swear.\n"
    assert rg.speeches(text) == [(1, "HAMLET", "To be, or not to be."), (text.index("\n\nHor."), "Hor", "My lord.")]


def test_sea_words_are_matched_as_whole_words():
    assert rg.sea_share("The waves, the ship!") and not rg.sea_share("Seasoned wavering shipmen")


def test_line_nats_is_the_mean_surprise_of_the_line_tokens_one_prefix_at_a_time():
    model, tok = pretrained.load("shakespeare-gpt")
    context, line = "\n\nPORTIA.\n", "The quality of mercy is not strain'd"
    ids = tok.encode(context + line)
    n_line = len(tok.encode(line))
    assert tok.encode(context) + tok.encode(line) == ids  # the two pieces tokenize apart
    with torch.no_grad():
        surprises = [-model(torch.tensor([ids[:p]])).logits[0, -1].log_softmax(-1)[ids[p]].item()
                     for p in range(len(ids) - n_line, len(ids))]
    assert abs(rg.line_nats(model, tok, context, line) - sum(surprises) / n_line) < 1e-4


def test_tiny_poem_run_counts_every_poem_once_and_greedy_is_repeatable():
    result = rg.poems(n_poems=2)
    assert result["n_poems"] == 2 and set(result["settings"]) == set(rg.SETTINGS)
    for measured in result["settings"].values():
        assert sum(measured["forms"].values()) == 2
        assert 0.0 <= measured["regular_share"] <= 1.0
    regular = result["corpus_regular_share"]
    assert abs(regular - (1 - corpora.form_shares("train")["other"])) < 1e-12
    model, tok = pretrained.load("tang-gpt")
    twice = [rg.sample_poems(model, tok, ["静夜思"], {"temperature": 0.0}, seed=s, max_new_tokens=12) for s in (0, 1)]
    assert twice[0] == twice[1]
