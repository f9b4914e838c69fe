"""Shared pytest configuration and fixtures. The website's fixtures live in test_website.py.

Notebook outputs are compared (nbval strict) only where llmbook.numerics can pin the kernels the
book's outputs were made with: x86-64 with AVX2. Elsewhere (Apple silicon, say) every cell of every
notebook still runs, under ``--nbval-lax``, and the run says once that outputs were not compared.
"""
from llmbook import numerics  # first: the pin must precede NumPy, which matplotlib imports

OUTPUTS_COMPARABLE = numerics.can_pin()

import matplotlib  # noqa: E402
import pytest  # noqa: E402

matplotlib.use("Agg")  # no display in tests; set before any test imports pyplot


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "website: opens the built site (_build/html) in headless Chromium; needs `make html` first",
    )
    config._llmbook_outputs_not_compared = False
    if getattr(config.option, "nbval", False) and not OUTPUTS_COMPARABLE:
        config.option.nbval, config.option.nbval_lax = False, True
        config._llmbook_outputs_not_compared = True


def pytest_report_header(config):
    return f"llmbook.numerics: {numerics.describe()}"


def pytest_terminal_summary(terminalreporter, config):
    if config._llmbook_outputs_not_compared:
        terminalreporter.write_line(f"NOTE: {numerics.COMPARED_ONLY_HERE}.", yellow=True, bold=True)


@pytest.fixture
def close_figures():
    """Close every pyplot figure a test opened (use with pytest.mark.usefixtures)."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


class DictCharTokenizer:
    """The smallest char tokenizer: a dict each way (the tests do not depend on llmbook.tokenizers)."""

    def __init__(self, text):
        self.itos = sorted(set(text))
        self.stoi = {ch: i for i, ch in enumerate(self.itos)}
        self.vocab_size = len(self.itos)

    def encode(self, s):
        return [self.stoi[ch] for ch in s]  # KeyError on an unknown character

    def decode(self, ids):
        return "".join(self.itos[i] for i in ids)


@pytest.fixture
def char_tok():
    """A char tokenizer over the 10 characters of "the cat sat on the mat"."""
    return DictCharTokenizer("the cat sat on the mat")


@pytest.fixture
def tiny_gpt(char_tok):
    """An untrained GPT over char_tok's vocabulary: 2 layers, 2 heads, d_model 16, context 32."""
    import torch

    from llmbook import GPT, GPTConfig

    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=char_tok.vocab_size, context_length=32, n_layers=2, n_heads=2, d_model=16))
