"""The Textual dashboard: ``make_app()`` builds it for the CLI and the tests.

Layout: ``app.py`` (the App, its panes, help and command palette), one module per pane
(``tokens.py``, ``bench.py``, ``data.py``) each defining a self-contained container class,
``screens.py`` for the modal dialogs, ``widgets/`` for reusable widgets. No business logic:
everything is computed by ``tui.core`` and arrives as its frozen dataclasses.
"""
