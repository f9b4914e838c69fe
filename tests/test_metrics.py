"""The answer metrics of chapter 9 on hand-made logits, and the loss at each position."""
import math

import pytest
import torch
import torch.nn.functional as F

from llmbook.metrics import answer_log_likelihood, answer_metrics, exact_match, loss_by_position
from llmbook.models import GPT, GPTConfig


def test_answer_metrics_on_hand_made_logits():
    targets = torch.tensor([[-100, 1, 2], [-100, 0, 0], [-100, -100, 1]])
    predictions = torch.tensor([[0, 1, 2], [0, 0, 1], [2, 2, 1]])  # row 1 has one wrong token
    logits = torch.nn.functional.one_hot(predictions, 3).float() * 2.0  # (3, 3, 3)
    m = answer_metrics(logits, targets)
    assert m["exact_match"] == pytest.approx(2 / 3)
    assert m["token_accuracy"] == pytest.approx(4 / 5)
    p_right, p_wrong = math.exp(2) / (math.exp(2) + 2), 1 / (math.exp(2) + 2)
    expected = (2 * math.log(p_right) + math.log(p_right) + math.log(p_wrong) + math.log(p_right)) / 3
    assert m["answer_log_likelihood"] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="at least one scored position"):
        answer_metrics(logits, torch.full((3, 3), -100))


def test_position_accuracy_is_per_answer_position_and_averages_to_token_accuracy():
    targets = torch.tensor([[-100, 1, 2], [-100, 0, 0], [-100, 2, 1]])
    predictions = torch.tensor([[0, 1, 2], [0, 0, 1], [2, 1, 1]])
    m = answer_metrics(torch.nn.functional.one_hot(predictions, 3).float(), targets)
    assert m["position_accuracy"] == pytest.approx([2 / 3, 2 / 3])
    assert sum(m["position_accuracy"]) / 2 == pytest.approx(m["token_accuracy"])


def test_exact_match_and_log_likelihood_score_only_the_answer():
    targets = torch.tensor([[-100, 1, 2], [-100, -100, 0]])
    assert exact_match(torch.tensor([[2, 1, 2], [1, 1, 0]]), targets).item() == 1.0  # question positions do not count
    assert exact_match(torch.tensor([[2, 1, 0], [1, 1, 0]]), targets).item() == 0.5
    logits = torch.zeros(2, 3, 4)  # uniform over 4 tokens: each scored token has log-probability -log 4
    assert answer_log_likelihood(logits, targets).tolist() == pytest.approx([-2 * math.log(4), -math.log(4)])


def test_loss_by_position_averages_the_cross_entropy_over_the_batch():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, context_length=8, n_layers=1, n_heads=2, d_model=16)).eval()
    x, y = torch.randint(0, 11, (3, 8)), torch.randint(0, 11, (3, 8))
    per_position = loss_by_position(model, x, y)
    assert per_position.shape == (8,)
    with torch.no_grad():
        assert per_position.mean().item() == pytest.approx(F.cross_entropy(model(x).logits.transpose(1, 2), y).item())
