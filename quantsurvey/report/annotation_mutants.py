"""Mutants that change only a type annotation that is never evaluated: no test can tell them.

Under `from __future__ import annotations` (PEP 563) a parameter's or return annotation is kept
as a string and never evaluated unless something asks for it (`typing.get_type_hints`,
`inspect.signature(eval_str=True)`, TorchScript); nothing in quantsurvey does, so a mutant
that turns `torch.Generator | None` into `torch.Generator + None` there is equivalent. An
annotated assignment in a function's body (`self._cache: dict[str, int] | None = {}`) is never
evaluated at all, with or without that import (PEP 526). Class-body annotations are left out on
purpose: dataclass fields are evaluated by OmegaConf's structured configs.
scripts/mutation_score.py marks such survivors with `REASON` by itself."""

from __future__ import annotations

import ast

REASON = ("equivalent: inside a type annotation that is never evaluated (a function's parameter "
          "or return annotation under `from __future__ import annotations`, or an annotated "
          "assignment in a function's body) (found automatically)")


def _postponed(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
               and any(a.name == "annotations" for a in node.names) for node in tree.body)


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """((line, col), (end line, end col)) of every annotation in `source` that is never
    evaluated (1-based lines, 0-based columns, as `ast` and cosmic-ray count): those of
    annotated assignments in function bodies, and, when the module postpones the evaluation of
    annotations, every function parameter and return annotation."""
    tree = ast.parse(source)
    postponed = _postponed(tree)
    lines = source.splitlines()

    def char_col(line: int, byte_col: int) -> int:  # ast counts UTF-8 bytes, cosmic-ray chars
        return len(lines[line - 1].encode()[:byte_col].decode())

    spans = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        args = node.args
        params = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        signature = [p.annotation for p in params if p is not None] + [node.returns]
        body = [n.annotation for n in _body_nodes(node) if isinstance(n, ast.AnnAssign)]
        for annotation in (signature if postponed else []) + body:
            if annotation is not None:
                spans.append(((annotation.lineno,
                               char_col(annotation.lineno, annotation.col_offset)),
                              (annotation.end_lineno,
                               char_col(annotation.end_lineno, annotation.end_col_offset))))
    return sorted(spans)


def _body_nodes(function: ast.FunctionDef | ast.AsyncFunctionDef):
    """The statements of a function's body at any depth, leaving out the bodies of classes
    defined in it (their annotations are evaluated when the class is made) and of functions
    defined in it (visited as functions of their own)."""
    stack = list(function.body)
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            stack.extend(ast.iter_child_nodes(node))


def in_annotation(start: tuple[int, int], end: tuple[int, int],
                  spans: list[tuple[tuple[int, int], tuple[int, int]]]) -> bool:
    """Whether the mutated text from `start` to `end` lies wholly inside one of `spans`."""
    return any(lo <= tuple(start) and tuple(end) <= hi for lo, hi in spans)
