"""Pictures: heatmaps and loss curves draw what they are given, the attention explorer builds and
redraws for GPT and BERT, and the bertviz adapters produce bertviz's HTML from our tensors."""
import base64
import re

import matplotlib.pyplot as plt
import pytest
import torch

from llmbook import BERT, BERTConfig, Seq2Seq, Seq2SeqConfig, viz
from llmbook.attention import causal_mask

pytestmark = pytest.mark.usefixtures("close_figures")


# ------------------------------------------------------------------------------------ heatmap
def test_plot_attention_labels_the_axes_with_the_tokens():
    weights = torch.softmax(torch.randn(3, 4), dim=-1)
    ax = viz.plot_attention(weights, ["a", "b", " "], ["w", "x", "y", "z"], title="one head")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "␣"]  # a space is made visible
    assert [t.get_text() for t in ax.get_xticklabels()] == ["w", "x", "y", "z"]
    assert ax.get_xlabel() == "key (attended to)" and ax.get_ylabel() == "query (attending)"
    assert ax.get_title() == "one head"
    assert len(ax.figure.axes) == 2  # the heatmap and its colour bar


def test_plot_attention_uses_query_tokens_for_keys_and_can_annotate():
    weights = causal_mask(3).float() / torch.arange(1, 4)[:, None]
    ax = viz.plot_attention(weights, list("abc"), annotate=True)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert sorted(t.get_text() for t in ax.texts) == sorted(f"{w:.2f}" for w in weights.flatten().tolist())
    assert min(t.get_fontsize() for t in ax.texts) >= 8  # the book's smallest readable size


@pytest.mark.parametrize("weights, query, keys, message", [
    (torch.rand(3, 4), list("ab"), list("wxyz"), "query_tokens has 2 tokens but the weights have 3 rows"),
    (torch.rand(3, 4), list("abc"), list("xyz"), "key_tokens has 3 tokens but the weights have 4 columns"),
    (torch.rand(3, 4), list("abc"), None, "query_tokens \\(used as keys\\) has 3 tokens"),
    (torch.rand(1, 2, 3, 3), list("abc"), None, "shape \\(1, 2, 3, 3\\)"),
])
def test_plot_attention_rejects_mismatched_inputs(weights, query, keys, message):
    with pytest.raises(ValueError, match=message):
        viz.plot_attention(weights, query, keys)


# ---------------------------------------------------------------------------------- loss curves
def test_plot_loss_draws_raw_and_smoothed_curves_with_labelled_axes():
    losses = [4.0 / (1 + 0.1 * t) for t in range(50)]
    ax = viz.plot_loss(losses, smooth=0.9, label="train", log_y=True)
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "loss (log scale)"
    assert ax.get_yscale() == "log"
    assert len(ax.lines) == 2  # the faint raw curve and the smoothed one
    assert ax.lines[1].get_ydata()[0] == losses[0]  # the average starts at the first loss, not 0


def test_plot_loss_takes_a_history_with_evaluations_and_several_runs():
    history = {"step": [0, 1, 2, 3], "loss": [3.0, 2.5, 2.0, 1.8],
               "evals": [{"step": 0, "val_loss": 3.1, "accuracy": 0.1}, {"step": 3, "val_loss": 2.0}]}
    ax = viz.plot_loss(history)
    assert [line.get_label() for line in ax.lines] == ["train", "val_loss"]
    assert list(ax.lines[1].get_xdata()) == [0, 3]
    ax = viz.plot_loss({"pre-LN": [3.0, 2.0], "post-LN": torch.tensor([3.0, 2.5])})
    assert [line.get_label() for line in ax.lines] == ["pre-LN", "post-LN"]


def test_ema_averages_from_the_first_value():
    assert viz.ema([1.0, 0.0, 0.0, 4.0], 0.5) == [1.0, 0.5, 0.25, 2.125]
    assert viz.ema(torch.tensor([3.0, 1.0]), 0.0) == [3.0, 1.0]  # weight 0: the values themselves
    with pytest.raises(ValueError, match="at least one value"):
        viz.ema([], 0.9)
    with pytest.raises(ValueError, match="weight=1.0"):
        viz.ema([1.0], 1.0)


@pytest.mark.parametrize("losses, options, message", [
    ([1.0, 2.0], {"smooth": 1.0}, "smooth=1.0"),
    ([], {}, "empty"),
    ([1.0, 0.0], {"log_y": True}, "positive"),
])
def test_plot_loss_rejects_bad_input(losses, options, message):
    with pytest.raises(ValueError, match=message):
        viz.plot_loss(losses, **options)


# ------------------------------------------------------------------------------- PNG pictures
def test_figure_png_draws_off_screen_at_the_requested_size():
    drawn = []
    png = viz.figure_png(lambda ax: drawn.append(ax.plot([0, 1], [1, 0])), (2.0, 1.5), dpi=50)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(drawn) == 1
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")  # the IHDR chunk
    assert (width, height) == (100, 75)
    assert plt.get_fignums() == []  # never registered with pyplot, so never shown twice


def test_png_img_tag_escapes_the_alt_text():
    tag = viz.png_img_tag(b"\x89PNG", 'a "quoted" <b>')
    assert tag.startswith('<img src="data:image/png;base64,iVBORw==" ')
    assert 'alt="a &quot;quoted&quot; &lt;b&gt;"' in tag


# --------------------------------------------------------------------------- attention explorer
def controls(explorer):
    text, sliders, status, image = explorer.children
    layer, head = sliders.children
    return text, layer, head, status, image


def test_attention_explorer_builds_for_gpt_and_redraws_on_change(tiny_gpt, char_tok):
    explorer = viz.attention_explorer(tiny_gpt, char_tok, "the cat")
    text, layer, head, status, image = controls(explorer)
    assert (layer.max, head.max) == (1, 1)
    assert status.value == "7 tokens"
    first = image.value
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', first).group(1))
    assert png[:4] == b"\x89PNG"
    assert 'alt="Heatmap of the attention weights of layer 0, head 0 for the text' in first
    head.value = 1
    assert image.value != first
    layer.value = 1
    text.value = "the mat sat"
    assert status.value == "11 tokens"


def test_attention_explorer_reports_a_bad_text_in_its_status_line(tiny_gpt, char_tok, capsys):
    explorer = viz.attention_explorer(tiny_gpt, char_tok, "the cat")
    text, layer, head, status, image = controls(explorer)
    before = image.value
    text.value = "dog"  # "d" and "g" are not in the vocabulary
    assert "cannot show this text" in status.value
    assert image.value == before  # the last good picture stays
    text.value = "t" * 40
    assert "beyond the context length 32" in status.value
    text.value = "tac eht"
    assert status.value == "7 tokens"
    assert capsys.readouterr().out == ""  # callbacks never print


def test_attention_explorer_works_with_bert_and_restores_training_mode(char_tok):
    torch.manual_seed(0)
    bert = BERT(BERTConfig(vocab_size=char_tok.vocab_size, context_length=32, n_layers=1, n_heads=2, d_model=16,
                           dropout=0.1))
    bert.train()
    explorer = viz.attention_explorer(bert, char_tok, "a cat")
    assert controls(explorer)[3].value == "5 tokens"
    assert bert.training


def test_attention_maps_match_the_model_and_check_the_length(tiny_gpt, char_tok):
    ids = torch.tensor([char_tok.encode("the cat")])
    expected = tiny_gpt(ids, return_attention=True).attentions
    maps = viz.attention_maps(tiny_gpt, ids[0])
    assert len(maps) == 2 and maps[0].shape == (2, 7, 7)
    assert all(torch.equal(m, e[0]) for m, e in zip(maps, expected))
    with pytest.raises(ValueError, match="40 tokens long, beyond the context length 32"):
        viz.attention_maps(tiny_gpt, [0] * 40)


def test_token_strings_decodes_each_id_alone(char_tok):
    assert viz.token_strings(char_tok, torch.tensor(char_tok.encode("at "))) == ["a", "t", " "]


# ----------------------------------------------------------------------------------- bertviz
def test_head_view_returns_bertviz_html_from_a_model_output(tiny_gpt, char_tok):
    ids = torch.tensor([char_tok.encode("the cat")] * 2)
    out = tiny_gpt(ids, return_attention=True)
    tokens = viz.token_strings(char_tok, ids[0])
    html = viz.head_view(out, tokens, html_action="return")
    assert "bertviz" in html.data
    html = viz.model_view(out.attentions, tokens, batch_index=1, html_action="return")
    assert "bertviz" in html.data


def test_head_view_shows_encoder_decoder_and_cross_attention():
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(src_vocab_size=12, tgt_vocab_size=12, context_length=16, d_model=16, n_heads=2))
    out = model(torch.randint(3, 12, (1, 5)), torch.randint(3, 12, (1, 4)), return_attention=True)
    html = viz.head_view(out, encoder_tokens=list("abcde"), decoder_tokens=list("wxyz"), html_action="return")
    for name in ("bertviz", "Encoder", "Decoder", "Cross"):
        assert name in html.data


def test_model_view_shows_encoder_decoder_and_cross_attention():
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(src_vocab_size=12, tgt_vocab_size=12, context_length=16, d_model=16, n_heads=2))
    out = model(torch.randint(3, 12, (2, 5)), torch.randint(3, 12, (2, 4)), return_attention=True)
    html = viz.model_view(out, encoder_tokens=list("abcde"), decoder_tokens=list("wxyz"), batch_index=1,
                          display_mode="light", html_action="return")
    for name in ("bertviz", "Encoder", "Decoder", "Cross"):
        assert name in html.data
    explicit = viz.model_view(encoder_attention=out.encoder_attentions, decoder_attention=out.attentions,
                              cross_attention=out.cross_attentions, encoder_tokens=list("abcde"),
                              decoder_tokens=list("wxyz"), batch_index=1, display_mode="light",
                              html_action="return")
    def strip(text):  # each view gets a new id
        return re.sub(r"bertviz-[0-9a-f]{32}", "", text)

    assert strip(explicit.data) == strip(html.data)


def test_bertviz_adapters_reject_malformed_input(tiny_gpt, char_tok):
    ids = torch.tensor([char_tok.encode("the cat")])
    attentions = tiny_gpt(ids, return_attention=True).attentions
    with pytest.raises(ValueError, match="batch_index=3 is outside the batch of size 1"):
        viz.head_view(attentions, list("the cat"), batch_index=3, html_action="return")
    with pytest.raises(ValueError, match=r"attentions\[0\] has shape \(2, 7, 7\)"):
        viz.head_view([a[0] for a in attentions], list("the cat"), html_action="return")
    with pytest.raises(ValueError, match="return_attention=True"):
        viz.head_view([], list("the cat"), html_action="return")
    with pytest.raises(ValueError, match="tokens are needed"):
        viz.model_view(attentions, html_action="return")


def test_attention_explorer_rejects_a_model_without_layers_and_heads(char_tok):
    model = Seq2Seq(Seq2SeqConfig(src_vocab_size=12, tgt_vocab_size=12, context_length=16, d_model=16, n_heads=2))
    with pytest.raises(TypeError, match="needs a GPT or BERT.*got Seq2Seq"):
        viz.attention_explorer(model, char_tok, "the cat")
