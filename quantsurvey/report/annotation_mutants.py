"""Mutants that change only a function's type annotation, which no test can tell from the code.

Under `from __future__ import annotations` (PEP 563) a parameter's or return annotation is kept
as a string and never evaluated unless something asks for it (`typing.get_type_hints`,
`inspect.signature(eval_str=True)`, TorchScript); nothing in quantsurvey does, so a mutant
that turns `torch.Generator | None` into `torch.Generator + None` there is equivalent. Class-body
annotations are left out on purpose: dataclass fields are evaluated by OmegaConf's structured
configs. scripts/mutation_score.py marks such survivors with `REASON` by itself."""

from __future__ import annotations

import ast

REASON = ("equivalent: inside a function's type annotation, kept as a string under `from "
          "__future__ import annotations` and never evaluated (found automatically)")


def _postponed(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
               and any(a.name == "annotations" for a in node.names) for node in tree.body)


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """((line, col), (end line, end col)) of every function parameter and return annotation in
    `source` (1-based lines, 0-based columns, as `ast` and cosmic-ray count), or none when the
    module does not postpone the evaluation of annotations."""
    tree = ast.parse(source)
    if not _postponed(tree):
        return []
    lines = source.splitlines()

    def char_col(line: int, byte_col: int) -> int:  # ast counts UTF-8 bytes, cosmic-ray chars
        return len(lines[line - 1].encode()[:byte_col].decode())

    spans = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        args = node.args
        params = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        for annotation in [p.annotation for p in params if p is not None] + [node.returns]:
            if annotation is not None:
                spans.append(((annotation.lineno,
                               char_col(annotation.lineno, annotation.col_offset)),
                              (annotation.end_lineno,
                               char_col(annotation.end_lineno, annotation.end_col_offset))))
    return spans


def in_annotation(start: tuple[int, int], end: tuple[int, int],
                  spans: list[tuple[tuple[int, int], tuple[int, int]]]) -> bool:
    """Whether the mutated text from `start` to `end` lies wholly inside one of `spans`."""
    return any(lo <= tuple(start) and tuple(end) <= hi for lo, hi in spans)
