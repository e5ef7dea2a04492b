"""results/mutation/README.md: the measured score, and the score today's tests reach on the
mutants that are not equivalent (the figure issue 15's goals are about)."""

import json

from quantsurvey.report.annotation_mutants import annotation_spans, in_annotation
from quantsurvey.report.mutation_reasons import CARRIED_IN_A_NEW_SESSION, carry_reasons
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


SOURCE = '''from __future__ import annotations

import dataclasses


def draw(generator: torch.Generator | None = None, *, k: int = 2 | 1) -> list[int] | None:
    local: int | None = k | 1
    return [k | 2]
    def method(self):
        self.cache: dict[str, int] | None = {}


@dataclasses.dataclass
class Cfg:
    seed: int | None = None


def factory():
    class Made:
        seed: int | None = None
'''


def _at(source, line, text, nth=0):
    """(line, col) of the nth `text` on 1-based `line`, as cosmic-ray gives a mutant's place."""
    row = source.splitlines()[line - 1]
    col = -1
    for _ in range(nth + 1):
        col = row.index(text, col + 1)
    return (line, col), (line, col + len(text))


def test_only_annotations_that_are_never_evaluated_are_found():
    spans = annotation_spans(SOURCE)
    assert in_annotation(*_at(SOURCE, 6, "|", 0), spans)  # the parameter's annotation
    assert in_annotation(*_at(SOURCE, 6, "|", 2), spans)  # the return annotation
    assert not in_annotation(*_at(SOURCE, 6, "|", 1), spans)  # a default value: evaluated
    assert in_annotation(*_at(SOURCE, 7, "|", 0), spans)  # a body's annotated assignment
    assert not in_annotation(*_at(SOURCE, 7, "|", 1), spans)  # code in the body
    assert not in_annotation(*_at(SOURCE, 8, "|"), spans)
    assert in_annotation(*_at(SOURCE, 10, "|"), spans)  # an attribute's, in a method's body
    # a dataclass field's annotation is read by OmegaConf's structured configs: not marked
    assert not in_annotation(*_at(SOURCE, 15, "|"), spans)
    # the same in a class made inside a function: evaluated when the class is made
    assert not in_annotation(*_at(SOURCE, 20, "|"), spans)
    # without `from __future__ import annotations` a signature's annotations are evaluated at
    # definition; a body's annotated assignment never is (PEP 526)
    eager = SOURCE.replace("from __future__ import annotations", "")
    assert not in_annotation(*_at(eager, 6, "|", 0), annotation_spans(eager))
    assert [line for (line, _), _ in annotation_spans(eager)] == [7, 10]
    # a mutant that reaches past the annotation is not inside it
    (line, col), _ = _at(SOURCE, 6, "|", 0)
    assert not in_annotation((line, col), (line, col + 40), spans)


def test_columns_count_characters_not_bytes_as_cosmic_ray_does():
    source = SOURCE.replace("k: int = 2 | 1", "σ: int | None = 2")
    spans = annotation_spans(source)
    (line, col), end = _at(source, 6, "|", 1)  # σ's annotation: 'σ' is 2 bytes, 1 character
    assert in_annotation((line, col), end, spans)
    assert not in_annotation((line, col + 9), (line, col + 10), spans)  # the default's '2'
    (line, start), _ = _at(source, 6, "int | None")  # counted in bytes, both ends would move
    assert in_annotation((line, start), (line, start + 3), spans)  # 'int'
    assert not in_annotation((line, start + 10), (line, start + 11), spans)  # the space after


def test_hand_reasons_follow_the_same_mutant_and_only_it():
    def mutant(operator, occurrence, diff, reason=None):
        return {"operator": operator, "occurrence": occurrence, "diff": diff,
                **({"reason": reason} if reason else {})}

    previous = [mutant("Add_Sub", 0, "-a + b\n+a - b", "equivalent: a is 0 here"),
                mutant("Add_Sub", 1, "-c + d\n+c - d", "killed since: t::x"),
                mutant("Lt_LtE", 0, "-x < y\n+x <= y", "adopted: the better code"),
                mutant("Mul_Div", 0, "-e * f\n+e / f")]  # never examined
    survivors = [mutant("Add_Sub", 0, "-a + b\n+a - b"),
                 mutant("Add_Sub", 1, "-c + d\n+c - d"),
                 mutant("Add_Sub", 2, "-a + b\n+a - b"),  # another occurrence: not the same
                 mutant("Lt_LtE", 0, "-x < z\n+x <= z"),  # its code changed: not the same
                 mutant("Mul_Div", 0, "-e * f\n+e / f"),
                 mutant("Add_Sub", 0, "-a + b\n+a - b", "equivalent: found automatically")]
    same_session = [dict(s) for s in survivors]
    assert carry_reasons(previous, same_session) == 2
    assert [s.get("reason") for s in same_session] == [
        "equivalent: a is 0 here", "killed since: t::x", None, None, None,
        "equivalent: found automatically"]  # a reason already given stays
    # a new session re-tested the module: a survivor 'killed since' is not killed, say so anew
    new_session = [dict(s) for s in survivors]
    assert carry_reasons(previous, new_session, CARRIED_IN_A_NEW_SESSION) == 1
    assert [s.get("reason") for s in new_session][:2] == ["equivalent: a is 0 here", None]


def test_every_module_and_test_the_mutation_script_names_exists():
    """scripts/mutation_score.py's MODULES once named report/collect.py, a file that does not
    exist: `--modules` would have offered it and the run would fail only when it got there.
    A single test it names (`file::test`) must exist too."""
    import importlib.util
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("mutation_score",
                                                  repo / "scripts" / "mutation_score.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    missing = [m for m in script.MODULES if not (repo / m).is_file()]
    for test in (t for tests in script.MODULES.values() for t in tests):
        path, _, name = test.partition("::")
        # a test named after `::` that no longer exists makes pytest exit 4 on every mutant,
        # which cosmic-ray would count as killed
        if not (repo / path).is_file() or (
                name and f"def {name}(" not in (repo / path).read_text()):
            missing.append(test)
    assert not missing, f"scripts/mutation_score.py names files that do not exist: {missing}"
    # what issue 15 asks the script to cover
    for area in ("quantsurvey/compress/", "quantsurvey/nn/", "quantsurvey/export.py",
                 "quantsurvey/stages.py", "quantsurvey/pipeline.py", "quantsurvey/data/base.py",
                 "quantsurvey/data/sampler.py", "quantsurvey/lit/classifier.py",
                 "quantsurvey/report/"):
        assert any(m.startswith(area) for m in script.MODULES), area
