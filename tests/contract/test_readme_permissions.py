"""The README's permission list is generated from bot/domain/permissions.py: it cannot drift."""

from __future__ import annotations

from pathlib import Path

from bot.domain import permissions as perms

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_permission_list_is_the_generated_one():
    text = README.read_text(encoding="utf-8")
    assert perms.replace_readme_section(text) == text, (
        "README.md's permission list differs from bot/domain/permissions.py: "
        "run `commonground invite-url --update-readme README.md`"
    )
    for p in perms.PERMISSIONS:
        assert f"**{p.name}**" in text
    assert str(perms.full_invite_permissions()) in text
    assert "Manage Messages" not in text.split(perms.README_BEGIN)[1].split(perms.README_END)[0]
