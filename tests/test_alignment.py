"""Instruction data, sequence log-probabilities, the reward-model loss, DPO and best-of-n, checked against
hand computations and the formulas in float64."""
import math

import pytest
import torch

from llmbook.alignment import (
    IGNORE,
    ChatTemplate,
    best_of_n,
    bradley_terry_loss,
    dpo_loss,
    encode_chat,
    pad_examples,
    sequence_logprobs,
)
from llmbook.tokenizers import CharTokenizer

TOK = CharTokenizer("abcdefgh ", specials=("<pad>", "<user>", "<assistant>", "<end>"))


def test_encode_chat_masks_the_prompt_and_keeps_the_response():
    ids, labels = encode_chat(TOK, ChatTemplate(), "abc", "de")
    user, assistant, end = (TOK.token_to_id(t) for t in ("<user>", "<assistant>", "<end>"))
    assert ids == [user, *TOK.encode("abc"), assistant, *TOK.encode("de"), end]
    assert labels == [IGNORE] * 5 + [*TOK.encode("de"), end]
    _, unmasked = encode_chat(TOK, ChatTemplate(), "abc", "de", mask_prompt=False)
    assert unmasked == ids


def test_a_template_that_puts_the_response_in_the_prompt_is_refused():
    with pytest.raises(ValueError, match="response's tokens would sit in the prompt"):
        ChatTemplate(prompt_format="<user>{instruction}<assistant>{response}", response_format="{response}<end>")
    with pytest.raises(ValueError, match="lacks the {instruction}"):
        ChatTemplate(prompt_format="<user><assistant>")
    with pytest.raises(ValueError, match="role marker '<end>'"):
        encode_chat(TOK, ChatTemplate(), "ab<end>", "c")


def test_pad_examples_pads_ids_and_ignores_padding_in_labels():
    ids, labels = pad_examples([([1, 2, 3], [IGNORE, 2, 3]), ([4], [4])], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert labels.tolist() == [[IGNORE, 2, 3], [4, IGNORE, IGNORE]]


class TableModel(torch.nn.Module):
    """A 'model' whose logits at position t depend only on the token at t: a (V, V) table."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.nn.Parameter(table)

    def forward(self, ids):
        return self.table[ids]


def test_sequence_logprobs_sums_only_the_response_tokens_by_hand():
    table = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.2, 0.7], [1 / 3, 1 / 3, 1 / 3]],
                                   dtype=torch.float64))
    model = TableModel(table)
    ids = torch.tensor([[0, 1, 2, 0]])
    labels = torch.tensor([[IGNORE, IGNORE, 2, 0]])  # score token 2 after token 1, token 0 after token 2
    got = sequence_logprobs(model, ids, labels)
    assert torch.allclose(got, torch.tensor([math.log(0.7) + math.log(1 / 3)], dtype=torch.float64))
    with pytest.raises(ValueError, match="no scored response token"):
        sequence_logprobs(model, ids, torch.full_like(ids, IGNORE))


def test_dpo_loss_matches_the_formula_in_float64_and_a_hand_value():
    g = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (torch.randn(7, generator=g, dtype=torch.float64) * 3 for _ in range(4))
    beta = 0.3
    loss, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta)
    margin = beta * ((pc - rc) - (pr - rr))
    assert torch.allclose(loss, torch.log1p(torch.exp(-margin)).mean(), atol=1e-12)
    assert torch.allclose(chosen, beta * (pc - rc)) and torch.allclose(rejected, beta * (pr - rr))
    one = torch.tensor([0.0], dtype=torch.float64)
    # policy = reference: margin 0, loss log 2
    assert dpo_loss(one, one, one, one, 1.0)[0].item() == pytest.approx(math.log(2), abs=1e-15)
    # chosen log-ratio +1, rejected -1, beta 0.5: margin 1, loss log(1 + e^-1) = 0.31326...
    l1 = dpo_loss(one + 1, one - 1, one, one, 0.5)[0].item()
    assert l1 == pytest.approx(0.3132616875182228, abs=1e-12)


def test_dpo_gradient_raises_the_chosen_and_lowers_the_rejected_log_probability():
    pc = torch.tensor([-5.0], requires_grad=True)
    pr = torch.tensor([-4.0], requires_grad=True)
    loss, _, _ = dpo_loss(pc, pr, torch.tensor([-5.0]), torch.tensor([-4.0]), beta=0.1)
    loss.backward()
    # d loss / d log pi(chosen) = -beta * sigmoid(-margin) = -0.05 at margin 0, and +0.05 for the rejected
    assert pc.grad.item() == pytest.approx(-0.05) and pr.grad.item() == pytest.approx(0.05)


def test_dpo_gradient_weight_is_beta_sigmoid_of_minus_beta_margin_per_pair():
    # m = (log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l)), not yet scaled by beta
    g = torch.Generator().manual_seed(1)
    pc, pr, rc, rr = (torch.randn(5, generator=g, dtype=torch.float64) * 4 for _ in range(4))
    pc.requires_grad_(True)
    pr.requires_grad_(True)
    beta = 0.7
    loss, _, _ = dpo_loss(pc, pr, rc, rr, beta)
    loss.backward()
    m = ((pc - rc) - (pr - rr)).detach()
    weight = beta / (1 + torch.exp(beta * m)) / 5  # beta * sigmoid(-beta * m), over the batch mean
    assert torch.allclose(pc.grad, -weight, atol=1e-12) and torch.allclose(pr.grad, weight, atol=1e-12)
    assert not torch.allclose(pc.grad, -beta / (1 + torch.exp(m)) / 5)  # sigma(-m) without beta is wrong
    # a pair ordered right by a wide margin barely pulls; one ordered wrong pulls with almost beta
    wide = dpo_loss(torch.tensor([0.0]), torch.tensor([-100.0]), torch.tensor([0.0]), torch.tensor([0.0]), 0.5)[0]
    assert wide.item() < 1e-20


def test_dpo_refuses_bad_beta_and_shapes():
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="beta=0"):
        dpo_loss(x, x, x, x, 0)
    with pytest.raises(ValueError, match="one shape"):
        dpo_loss(x, x, x, torch.zeros(2), 1.0)


def test_bradley_terry_loss_by_hand():
    got = bradley_terry_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0])).item()
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(1))) / 2
    assert got == pytest.approx(expected, rel=1e-6)


def test_best_of_n_picks_the_highest_reward_first_on_ties():
    chosen, rewards = best_of_n([["a", "b", "c"], ["d", "e", "f"]], torch.tensor([[0.1, 0.9, 0.3], [2.0, 2.0, 1.0]]))
    assert chosen == ["b", "d"] and rewards.tolist() == pytest.approx([0.9, 2.0])
    with pytest.raises(ValueError, match=r"must be \(B, n\)"):
        best_of_n([["a"]], torch.zeros(1, 2))


def test_best_of_n_kl_bound_crosses_two_nats_between_19_and_20_as_exercise_10_5_says():
    bound = [math.log(n) - (n - 1) / n for n in range(1, 41)]
    first_above_2 = next(n for n, b in zip(range(1, 41), bound) if b >= 2)
    assert first_above_2 == 20
    assert (round(bound[18], 3), round(bound[19], 3)) == (1.997, 2.046)
    # for large n the bound is log n - 1 + 1/n
    assert math.log(1e6) - (1e6 - 1) / 1e6 == pytest.approx(math.log(1e6) - 1, abs=2e-6)
