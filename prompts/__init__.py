"""The essay and the built-in prompt pack, installed as the package ``bot.prompts``.

This folder is the one copy of those files: pyproject.toml maps the package ``bot.prompts`` to it
(``[tool.setuptools.package-dir]``), so a wheel carries them inside ``bot/``, an editable install finds
them here, and the code reads them through ``importlib.resources`` either way (bot/domain/essay.py).
"""
