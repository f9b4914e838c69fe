"""Pictures of what a model computes: attention heatmaps, loss curves, an interactive attention
explorer, a next-token explorer for decoding settings, value histograms against number formats, and
adapters that hand our attention tensors to bertviz.

The modules, one job each: `labels` (tokens as plot labels), `images` (figures as PNG and <img>),
`attention`, `loss`, `next_token`, `number_formats`, `bertviz_views` and `bertviz_html` (bertviz's
views made to draw offline, with the scripts in `static/`), `fonts` (a shipped font for Chinese text
in figures, in `fonts/`). Every public name is
importable from `llmbook.viz` itself.

matplotlib, ipywidgets and bertviz are imported inside the functions that use them, so that
``import llmbook`` stays light and works where no plotting library is installed.

Used in every chapter.
"""
__all__ = [
    "attention_explorer", "attention_maps", "cjk_font_path", "display_token", "ema", "figure_png", "head_view",
    "model_view",
    "next_token_distribution", "next_token_explorer", "plot_attention", "plot_loss", "plot_next_token",
    "plot_range_histogram", "png_img_tag", "range_explorer", "token_strings", "use_cjk_font",
]

from .attention import attention_explorer, attention_maps, plot_attention
from .bertviz_views import head_view, model_view
from .fonts import cjk_font_path, use_cjk_font
from .images import figure_png, png_img_tag
from .labels import display_token, token_strings
from .loss import ema, plot_loss
from .next_token import next_token_distribution, next_token_explorer, plot_next_token
from .number_formats import plot_range_histogram, range_explorer
