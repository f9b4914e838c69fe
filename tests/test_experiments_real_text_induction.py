"""The induction measurements of chapter 9 on the shipped Shakespeare GPT, at a tiny size."""
import math

import pytest
import torch

from llmbook import pretrained
from llmbook.experiments import real_text_induction as rti


def test_in_context_score_is_late_minus_early_loss_per_window():
    losses = torch.zeros(2, 10)
    losses[0, 1:3] = torch.tensor([4.0, 2.0])  # early mean 3
    losses[0, 6:9] = 1.0  # late mean 1: this window is predicted better late
    losses[1, 6:9] = torch.tensor([0.0, 3.0, 6.0])  # late mean 3, early mean 0
    scores = rti.in_context_scores(losses, early=(1, 3), late=(6, 9))
    assert scores.tolist() == [-2.0, 3.0]
    with pytest.raises(ValueError, match="early"):
        rti.in_context_scores(losses, early=(5, 8), late=(6, 9))  # overlapping ranges


def test_repeated_random_tokens_repeat_and_avoid_excluded_ids():
    seqs = rti.repeated_random_tokens(8, 20, range(4, 50), torch.Generator().manual_seed(0))
    assert seqs.shape == (8, 40)
    assert torch.equal(seqs[:, :20], seqs[:, 20:])
    assert seqs.min() >= 4 and seqs.max() < 50
    assert len(seqs.unique()) > 30  # drawn from the whole range, not a few ids
    with pytest.raises(ValueError, match="period"):
        rti.repeated_random_tokens(2, 0, range(10))


def test_window_losses_add_up_to_the_cards_scoring_of_the_same_tokens():
    model, _ = pretrained.load("shakespeare-gpt")
    T = model.config.context_length
    ids = pretrained.token_stream("shakespeare-gpt", "test")[: 3 * T]
    losses = rti.window_losses(model, ids, max_windows=2, batch_size=1)
    assert losses.shape == (2, T - 1)
    # lm_nats scores consecutive windows of T + 1 tokens; cut the stream so that both see the same windows
    rows = ids[: 2 * T].view(2, T)
    total = sum(pretrained.lm_nats(model, row)[0] for row in rows)
    assert math.isclose(losses.sum().item(), total, rel_tol=1e-4)
    with pytest.raises(ValueError, match="no window"):
        rti.window_losses(model, ids[: T - 1])


def test_a_model_that_copies_scores_low_on_the_second_copy():
    """A hand-made 'model' whose logits at position t point at the token P - 1 places back: a perfect
    copier after the first copy, so the second copy's loss is near zero and the first copy's is not."""
    P, V = 6, 12

    class Copier(torch.nn.Module):
        def forward(self, x, return_attention=False):
            B, T = x.shape
            logits = torch.zeros(B, T, V)
            for t in range(P - 1, T):
                logits[torch.arange(B), t, x[:, t - P + 1]] = 30.0
            weights = torch.zeros(B, 1, T, T)
            for t in range(T):
                weights[:, 0, t, max(t - P + 1, 0)] = 1.0
            return type("Out", (), {"logits": logits, "attentions": [weights]})()

    seqs = rti.repeated_random_tokens(4, P, range(V), torch.Generator().manual_seed(1))
    result = rti.repeat_test(Copier(), seqs)
    assert result["loss_second_copy"] < 1e-6 < 1.0 < result["loss_first_copy"]
    assert result["induction_scores"] == [[1.0]]
    assert len(result["loss_by_position"]) == 2 * P - 1


def test_run_at_a_tiny_size_returns_plain_data():
    data = rti.run(n_sequences=2, period=10, max_windows=2)
    assert data["test_text"]["windows"] == 2
    assert len(data["test_text"]["loss_by_position"]) == data["settings"]["context_length"] - 1
    heads = data["repeated_tokens"]["induction_scores"]
    assert len(heads) == 4 and all(len(layer) == 4 for layer in heads)
    assert all(0.0 <= s <= 1.0 for layer in heads for s in layer)
    assert data["settings"]["random_ids"] == 2048 - 4  # the BERT specials are never drawn
    with pytest.raises(ValueError, match="exceed the context"):
        rti.run(period=200, max_windows=1)
