"""The next-token explorer: the distribution it shows is the one sample_next_token draws from,
the bar chart draws what it is given, and the widget redraws and reports bad input."""
import matplotlib

matplotlib.use("Agg")  # no display in tests

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from llmbook import GPT, GPTConfig, viz  # noqa: E402
from llmbook.generate import sample_next_token  # noqa: E402


class DictCharTokenizer:
    def __init__(self, text):
        self.itos = sorted(set(text))
        self.stoi = {ch: i for i, ch in enumerate(self.itos)}
        self.vocab_size = len(self.itos)

    def encode(self, s):
        return [self.stoi[ch] for ch in s]  # KeyError on an unknown character

    def decode(self, ids):
        return "".join(self.itos[i] for i in ids)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def tok():
    return DictCharTokenizer("the cat sat on the mat")


@pytest.fixture
def gpt(tok):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=tok.vocab_size, context_length=16, n_layers=1, n_heads=2, d_model=16))


def test_distribution_matches_the_sampler(gpt, tok):
    ids = tok.encode("the ca")
    probs = viz.next_token_distribution(gpt, ids, temperature=0.7, top_k=5, top_p=0.8)
    assert probs.shape == (tok.vocab_size,) and abs(probs.sum().item() - 1) < 1e-5
    assert 1 <= int((probs > 0).sum()) <= 5
    with torch.no_grad():
        logits = gpt.eval()(torch.tensor([ids])).logits[:, -1]
    draws = sample_next_token(logits.expand(4000, -1), 0.7, 5, 0.8, torch.Generator().manual_seed(0))[:, 0]
    freq = torch.bincount(draws, minlength=tok.vocab_size).float() / 4000
    torch.testing.assert_close(freq, probs, atol=0.03, rtol=0)
    greedy = viz.next_token_distribution(gpt, ids, temperature=0)
    assert greedy.max() == 1.0 and int(greedy.argmax()) == int(logits.argmax())


def test_plot_next_token_labels_and_orders_the_bars(tok):
    probs = torch.softmax(torch.arange(tok.vocab_size, dtype=torch.float), 0)
    ax = viz.plot_next_token(probs, [tok.decode([i]) for i in range(tok.vocab_size)], reference=probs.flip(0),
                             n_show=4, title="t")
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == [viz.display_token(tok.decode([i])) for i in range(4)]  # most likely under the reference
    assert ax.get_xlabel() == "next token" and ax.get_ylabel() == "probability" and ax.get_title() == "t"
    with pytest.raises(ValueError, match="tokens"):
        viz.plot_next_token(probs, ["a"])


def test_explorer_redraws_and_reports_bad_text(gpt, tok):
    box = viz.next_token_explorer(gpt, tok, "the c")
    text_box, sliders, status, image = box.children
    temperature, top_k, top_p = sliders.children
    first = image.value
    assert first and f"of {tok.vocab_size} tokens can be drawn" in status.value
    top_k.value = 1
    assert status.value.startswith("1 of") and image.value != first
    text_box.value = "xyz"  # not in the vocabulary
    assert "cannot show this text" in status.value


def test_bad_settings_are_refused(gpt, tok):
    with pytest.raises(ValueError, match="0 tokens"):
        viz.next_token_distribution(gpt, [])
    with pytest.raises(ValueError, match="beyond the context length 16"):
        viz.next_token_distribution(gpt, [0] * 17)
    with pytest.raises(ValueError, match="temperature"):
        viz.next_token_distribution(gpt, [0], temperature=-1)
    with pytest.raises(TypeError, match="vocab_size"):
        viz.next_token_explorer(gpt, object(), "a")
