"""The next-token explorer: the distribution it shows is the one sample_next_token draws from,
the bar chart draws what it is given, and the widget redraws and reports bad input."""
import pytest
import torch

from llmbook import viz
from llmbook.generate import sample_next_token

pytestmark = pytest.mark.usefixtures("close_figures")


def test_distribution_matches_the_sampler(tiny_gpt, char_tok):
    ids = char_tok.encode("the ca")
    probs = viz.next_token_distribution(tiny_gpt, ids, temperature=0.7, top_k=5, top_p=0.8)
    assert probs.shape == (char_tok.vocab_size,) and abs(probs.sum().item() - 1) < 1e-5
    assert 1 <= int((probs > 0).sum()) <= 5
    with torch.no_grad():
        logits = tiny_gpt.eval()(torch.tensor([ids])).logits[:, -1]
    draws = sample_next_token(logits.expand(4000, -1), 0.7, 5, 0.8, torch.Generator().manual_seed(0))[:, 0]
    freq = torch.bincount(draws, minlength=char_tok.vocab_size).float() / 4000
    torch.testing.assert_close(freq, probs, atol=0.03, rtol=0)
    greedy = viz.next_token_distribution(tiny_gpt, ids, temperature=0)
    assert greedy.max() == 1.0 and int(greedy.argmax()) == int(logits.argmax())


def test_plot_next_token_labels_and_orders_the_bars(char_tok):
    probs = torch.softmax(torch.arange(char_tok.vocab_size, dtype=torch.float), 0)
    ax = viz.plot_next_token(probs, [char_tok.decode([i]) for i in range(char_tok.vocab_size)], reference=probs.flip(0),
                             n_show=4, title="t")
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == [viz.display_token(char_tok.decode([i])) for i in range(4)]  # most likely under the reference
    assert ax.get_xlabel() == "next token" and ax.get_ylabel() == "probability" and ax.get_title() == "t"
    with pytest.raises(ValueError, match="tokens"):
        viz.plot_next_token(probs, ["a"])


def test_explorer_redraws_and_reports_bad_text(tiny_gpt, char_tok):
    box = viz.next_token_explorer(tiny_gpt, char_tok, "the c")
    text_box, sliders, status, image = box.children
    temperature, top_k, top_p = sliders.children
    first = image.value
    assert first and f"of {char_tok.vocab_size} tokens can be drawn" in status.value
    top_k.value = 1
    assert status.value.startswith("1 of") and image.value != first
    text_box.value = "xyz"  # not in the vocabulary
    assert "cannot show this text" in status.value


def test_explorer_without_filters_shows_the_temperature_alone(tiny_gpt, char_tok):
    box = viz.next_token_explorer(tiny_gpt, char_tok, "the c", temperature=0.5, filters=False)
    text_box, sliders, status, image = box.children
    (temperature,) = sliders.children
    assert f"of {char_tok.vocab_size} tokens can be drawn" in status.value  # no filter: every token
    assert "with T = 0.50, next to" in image.value and "top-k" not in image.value
    first = image.value
    temperature.value = 2.0
    assert image.value != first
    with pytest.raises(ValueError, match="top_k must be 0 and top_p 1.0, got top_k=3"):
        viz.next_token_explorer(tiny_gpt, char_tok, "the c", top_k=3, filters=False)


def test_bad_settings_are_refused(tiny_gpt, char_tok):
    with pytest.raises(ValueError, match="0 tokens"):
        viz.next_token_distribution(tiny_gpt, [])
    with pytest.raises(ValueError, match="beyond the context length 32"):
        viz.next_token_distribution(tiny_gpt, [0] * 33)
    with pytest.raises(ValueError, match="temperature"):
        viz.next_token_distribution(tiny_gpt, [0], temperature=-1)
    with pytest.raises(TypeError, match="vocab_size"):
        viz.next_token_explorer(tiny_gpt, object(), "a")
