"""Every table published in docs/results/ is recomputed from the per-question data beside it."""

from pathlib import Path

import pytest

from routing_gym.bench import published

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
PAGES = sorted(
    p for p in RESULTS.glob("*.md") if published.BLOCK.search(p.read_text(encoding="utf-8"))
)


def test_the_published_pages_have_computed_tables():
    names = {p.name for p in PAGES}
    assert {
        "pool_quality.md",
        "haps_hotpotqa_qwen_pair.md",
        "haps_hotpotqa_first_pool.md",
        "multihop_six_tasks.md",
        "llmrouter_curves.md",
        "llmrouter_features.md",
    } <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_each_committed_table_equals_the_table_recomputed_from_its_data(page):
    found = published.blocks(page)
    assert found
    for spec, committed, recomputed in found:
        assert committed == recomputed, f"{page.name}: block {spec!r} differs from its data"


def test_a_hand_edited_number_is_caught(tmp_path):
    page = tmp_path / "pool_quality.md"
    text = (RESULTS / "pool_quality.md").read_text(encoding="utf-8")
    (tmp_path / "data").mkdir()
    data = RESULTS.parent / "pool_quality" / "scores_n50.csv"
    (tmp_path / "data" / "scores_n50.csv").write_text(
        data.read_text(encoding="utf-8"), encoding="utf-8"
    )
    text = text.replace("../pool_quality/scores_n50.csv", "data/scores_n50.csv")
    assert "| 0.612 [0.481, 0.727] |" in text  # the 1.5B model's HotpotQA F1
    page.write_text(
        text.replace("| 0.612 [0.481, 0.727] |", "| 0.652 [0.481, 0.727] |", 1), encoding="utf-8"
    )
    assert published.main(["--check", str(page)]) == 1
    assert published.main([str(page)]) == 0  # rewrites it from the data
    assert published.main(["--check", str(page)]) == 0
    assert "| 0.652 [" not in page.read_text(encoding="utf-8")


def test_a_block_naming_a_missing_file_is_an_error(tmp_path):
    page = tmp_path / "x.md"
    page.write_text(
        "<!-- computed: haps nowhere.json 0.5 -->\n<!-- end computed -->\n", encoding="utf-8"
    )
    with pytest.raises(ValueError, match="nowhere.json does not exist"):
        published.blocks(page)
    page.write_text("<!-- computed: nonsense x.json -->\n<!-- end computed -->\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown computed block 'nonsense'"):
        published.blocks(page)
