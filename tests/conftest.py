"""Shared pytest configuration. The website's fixtures live in test_website.py.

Notebook outputs are compared (nbval strict) only where llmbook.numerics can pin the kernels the
book's outputs were made with: x86-64 with AVX2. Elsewhere (Apple silicon, say) every cell of every
notebook still runs, under ``--nbval-lax``, and the run says once that outputs were not compared.
"""
from llmbook import numerics


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "website: opens the built site (_build/html) in headless Chromium; needs `make html` first",
    )
    config._llmbook_outputs_not_compared = False
    if getattr(config.option, "nbval", False) and not numerics.outputs_comparable():
        config.option.nbval, config.option.nbval_lax = False, True
        config._llmbook_outputs_not_compared = True


def pytest_report_header(config):
    return f"llmbook.numerics: {numerics.describe()}"


def pytest_terminal_summary(terminalreporter, config):
    if config._llmbook_outputs_not_compared:
        terminalreporter.write_line(f"NOTE: {numerics.COMPARED_ONLY_HERE}.", yellow=True, bold=True)
