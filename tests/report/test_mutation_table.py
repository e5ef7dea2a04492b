"""results/mutation/README.md: the measured score, and the score today's tests reach on the
mutants that are not equivalent (the figure issue 15's goals are about)."""

import json

from quantsurvey.report.mutation_table import render_table


def test_after_score_counts_killed_since_and_leaves_out_equivalents(tmp_path):
    record = {"module": "quantsurvey/m.py", "tests": ["tests/t.py"], "mutants": 20,
              "killed": 12, "incompetent": 1, "timeout": 1, "survived": 6, "not run": 0,
              "score_pct": 70.0, "goal_pct": 90.0, "commit": "c" * 12, "wall_s": 9.0,
              "survivors": [{"line": 1, "operator": "a", "reason": "equivalent: why"},
                            {"line": 2, "operator": "b", "reason": "equivalent: why"},
                            {"line": 3, "operator": "c", "reason": "killed since: t::x"},
                            {"line": 4, "operator": "d", "reason": "killed since: t::y"},
                            {"line": 5, "operator": "e", "reason": "left: no test yet"},
                            {"line": 6, "operator": "f"}]}
    (tmp_path / "quantsurvey__m.json").write_text(json.dumps(record))
    text = render_table(tmp_path)
    # killed 12 + 1 + 1 + 2 since = 16 of the 18 that are not equivalent
    assert ("| quantsurvey/m.py | tests/t.py | 20 | 14 | 6 | 70.0 | 2 | 2 | 88.9 | 90 | "
            "cccccccccccc | 9.0 |") in text
    assert "- line 6, f: not yet examined" in text
    assert "- line 5, e: left: no test yet" in text
