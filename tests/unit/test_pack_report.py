"""scripts/pack-report: the built-in pack meets its variety limits, and each limit can fail on its own."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import replace
from importlib.machinery import SourceFileLoader
from pathlib import Path
from types import ModuleType

import pytest

from bot.domain.packs import Dilemma, Option, Pack, Prompt, load_builtin_pack

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "pack-report"
EXCERPT = "Individualism emphasizes the value of self-reliance and personal responsibility."
SETTINGS = ("family", "school", "friends", "neighbourhood", "workplace", "online", "club", "civic", "health")


@pytest.fixture(scope="module")
def pack_report() -> ModuleType:
    loader = SourceFileLoader("pack_report", str(SCRIPT))
    spec = importlib.util.spec_from_loader("pack_report", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pack_report"] = module  # its dataclass looks its module up while being built
    try:
        loader.exec_module(module)
    finally:
        del sys.modules["pack_report"]
    return module


def make_pack(n: int, *, top_setting: int = 0, teen: int | None = None, beyond: int | None = None) -> Pack:
    """``n`` dilemmas spread evenly over the settings, except ``top_setting`` of them all 'family';
    ``teen`` and ``beyond`` of them flagged (default: half)."""
    teen = n // 2 if teen is None else teen
    beyond = n // 2 if beyond is None else beyond
    rest = [s for s in SETTINGS if s != "family"]
    dilemmas = [
        Dilemma(
            f"Question {i}?",
            (Option("Me first", -1.0), Option("Us first", 1.0)),
            f"d-{i}",
            "family" if i < top_setting else rest[i % len(rest)],
            i < teen,
            i >= n - beyond,
        )
        for i in range(n)
    ]
    prompts = tuple(
        Prompt(f"p-{i}", 1, EXCERPT, "balance", "Why?", tuple(dilemmas[i : i + 10])) for i in range(0, n, 10)
    )
    return Pack("test", "Test", "A test pack", prompts, "test.yaml")


def verdicts(pack_report: ModuleType, pack: Pack) -> dict[str, bool]:
    return {c.name: c.ok for c in pack_report.checks(pack)}


def test_the_shipped_pack_meets_every_limit(pack_report: ModuleType) -> None:
    pack = load_builtin_pack()
    lines, ok = pack_report.report(pack)
    n = sum(len(p.dilemmas) for p in pack.prompts)
    assert ok, "\n".join(lines)
    assert f"prompts: {len(pack.prompts)}   dilemmas: {n}" in lines[1]
    assert [line.split()[0] for line in lines if line.startswith(("PASS", "FAIL"))] == ["PASS"] * 4


def test_a_pack_at_every_limit_passes(pack_report: ModuleType) -> None:
    # 130 dilemmas; family exactly 30 % (39), teen exactly 40 % (52), beyond_anglo exactly 25 % (33 > 32.5)
    assert all(verdicts(pack_report, make_pack(130, top_setting=39, teen=52, beyond=33)).values())


@pytest.mark.parametrize(
    ("pack", "failing"),
    [
        (make_pack(129), "at least 130 dilemmas shown by default"),
        (make_pack(130, top_setting=40), "no setting above 30%"),
        (make_pack(130, teen=51), "teen at least 40%"),
        (make_pack(130, beyond=32), "beyond_anglo at least 25%"),
    ],
)
def test_each_limit_fails_on_its_own(pack_report: ModuleType, pack: Pack, failing: str) -> None:
    result = verdicts(pack_report, pack)
    assert [name for name, ok in result.items() if not ok] == [failing]
    lines, ok = pack_report.report(pack)
    assert not ok
    assert any(line.startswith(f"FAIL  {failing}") for line in lines)


def test_dilemmas_of_sensitive_prompts_do_not_count_towards_the_minimum(pack_report: ModuleType) -> None:
    pack = make_pack(139)
    assert all(verdicts(pack_report, pack).values())
    first, *rest = pack.prompts
    hidden = replace(pack, prompts=(replace(first, sensitive=True), *rest))
    result = verdicts(pack_report, hidden)
    assert [name for name, ok in result.items() if not ok] == ["at least 130 dilemmas shown by default"]
    lines, ok = pack_report.report(hidden)
    assert not ok
    assert "FAIL  at least 130 dilemmas shown by default: 129 (10 more in sensitive prompts)" in lines
    assert "sensitive prompts (shown only where a server opts in): 1, with 10 dilemmas" in lines


def test_report_counts_settings_and_flags(pack_report: ModuleType) -> None:
    lines, _ = pack_report.report(make_pack(20, top_setting=5, teen=8, beyond=4))
    text = "\n".join(lines)
    assert "prompts: 2   dilemmas: 20" in text
    assert "  family            5   25.0 %" in text
    assert "teen (answerable by a 13-16-year-old):\n  True      8   40.0 %\n  False    12   60.0 %" in text
    assert "beyond_anglo (outside Anglo-European defaults):\n  True      4   20.0 %" in text
    assert "dilemmas by number of options:\n  2    20  100.0 %" in text


def test_command_exits_0_on_the_shipped_pack() -> None:
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "FAIL" not in run.stdout
    assert run.stdout.count("PASS  ") == 4


def test_command_exits_1_on_a_small_pack_and_on_a_broken_one(tmp_path: Path) -> None:
    small = tmp_path / "small.yaml"
    small.write_text(
        "pack: {id: small, name: Small, description: One prompt, version: 1}\n"
        "prompts:\n"
        "  - id: one\n"
        "    paragraph: 1\n"
        f'    excerpt: "{EXCERPT}"\n'
        "    theme: self-reliance\n"
        '    question: "Why?"\n'
        "    dilemmas:\n"
        "      - id: only-one\n"
        '        question: "Which?"\n'
        "        setting: school\n"
        "        teen: true\n"
        "        options:\n"
        '          - {label: "Me", position: -1.0}\n'
        '          - {label: "Us", position: 1.0}\n',
        encoding="utf-8",
    )
    run = subprocess.run([sys.executable, str(SCRIPT), str(small)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "FAIL  at least 130 dilemmas shown by default: 1 (0 more in sensitive prompts)" in run.stdout
    assert "FAIL  no setting above 30%: largest: school 100.0%" in run.stdout
    assert "PASS  teen at least 40%: 100.0%" in run.stdout

    broken = tmp_path / "broken.yaml"
    broken.write_text("pack: [\n", encoding="utf-8")
    run = subprocess.run([sys.executable, str(SCRIPT), str(broken)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "The pack was not imported" in run.stderr
