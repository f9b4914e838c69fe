"""Shared pytest configuration. The website's fixtures live in test_website.py."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "website: opens the built site (_build/html) in headless Chromium; needs `make html` first",
    )
