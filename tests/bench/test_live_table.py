"""The demo's live comparison table carries n and each mean's 95% interval."""

from routing_gym.bench.live import live_markdown

REGIMES = ("performance-first", "balanced", "cost-first")


def _result():
    row = {
        "student": "small",
        "teacher": "large",
        "perf": 0.5,
        "perf_ci": [0.25, 0.75],
        "cost": 0.1,
        "usd": 1e-5,
        "tokens": 100,
        "turns": 2,
        "reward": {g: 0.5 - i * 0.05 for i, g in enumerate(REGIMES)},
        "reward_ci": {g: [0.125, 0.875] for g in REGIMES},
    }
    oracle = {"perf": 0.7, "reward": {g: 0.6 for g in REGIMES}}
    return {"questions": 4, "rows": [row], "oracle": oracle}


def test_live_table_states_n_and_each_interval():
    lines = live_markdown(_result()).splitlines()
    assert lines[0] == "n = 4 questions, every assignment on the same ones"
    cells = [c.strip() for c in lines[4].strip("|").split("|")]
    assert cells[2] == "0.500 [0.250, 0.750]"
    # rewards 0.5, 0.45, 0.4 by regime, each with its own interval
    assert cells[7:] == ["0.500 [0.125, 0.875]", "0.450 [0.125, 0.875]", "0.400 [0.125, 0.875]"]


def test_live_table_without_intervals_prints_the_bare_mean():
    result = _result()
    del result["rows"][0]["perf_ci"], result["rows"][0]["reward_ci"]
    cells = [c.strip() for c in live_markdown(result).splitlines()[4].strip("|").split("|")]
    assert cells[2] == "0.500"
    assert cells[8] == "0.450"
