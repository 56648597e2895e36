"""Safe arithmetic: the expression is parsed with ``ast`` and walked, never ``eval``-ed.

Only numbers, ``+ - * / // % **``, unary ``+ -`` and parentheses are accepted. Integers are
exact and capped in size (a result above 2**1024 is refused), and powers are checked before
they are computed, so ``9**9**9`` is refused instantly instead of eating the CPU.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

from events.errors import ToolError
from events.tools import CalculatorArgs
from services.executor.tools.context import ToolContext

__all__ = ["MAX_INT_BITS", "evaluate", "format_number", "run"]

Number = int | float

# About 1.8e308: the same magnitude a float can hold, so ints and floats share one limit.
MAX_INT_BITS = 1024

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_REFUSED_SYMBOLS: dict[type[ast.AST], str] = {
    ast.MatMult: "@",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.Invert: "~",
    ast.Not: "not",
}


async def run(args: CalculatorArgs, _ctx: ToolContext) -> str:
    return format_number(evaluate(args.expression))


def evaluate(expression: str) -> Number:
    """The value of ``expression``. Raises a non-transient ``ToolError`` for anything else."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"not a valid arithmetic expression: {exc.msg}") from exc
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ToolError(f"not a valid arithmetic expression: {exc}") from exc
    try:
        return _checked(_evaluate(tree.body))
    except ZeroDivisionError as exc:
        raise ToolError(f"division by zero in {expression!r}") from exc
    except OverflowError as exc:
        raise ToolError(f"result of {expression!r} is too large") from exc
    except RecursionError as exc:
        raise ToolError(f"expression {expression!r} is nested too deeply") from exc


def format_number(value: Number) -> str:
    """Integers as integers, floats compactly: 391, 2.5, 5 (for 10/2), 1e+20."""
    if isinstance(value, int):
        return str(value)
    text = format(value, ".15g")
    return "0" if text == "-0" else text


def _evaluate(node: ast.expr) -> Number:
    if isinstance(node, ast.Constant):
        # bool is an int subclass and complex is a number, but neither is arithmetic input here.
        if type(node.value) in (int, float):
            return _checked(node.value)
        raise ToolError(f"only numbers are allowed, not {node.value!r}")
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _checked(_UNARY[type(node.op)](_evaluate(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            _refuse_huge_power(left, right)
        return _checked(_BINARY[type(node.op)](left, right))
    raise ToolError(f"not allowed in arithmetic: {_describe(node)}")


def _refuse_huge_power(base: Number, exponent: Number) -> None:
    """Refuse integer powers whose result would certainly exceed the cap, before computing."""
    if not (isinstance(base, int) and isinstance(exponent, int) and exponent > 0):
        return
    # |base| >= 2**(bits-1), so the result has at least (bits-1)*exponent bits.
    if (abs(base).bit_length() - 1) * exponent > MAX_INT_BITS:
        raise ToolError(f"{base}**{exponent} is too large (limit is about 2**{MAX_INT_BITS})")


def _checked(value: object) -> Number:
    if isinstance(value, complex):
        raise ToolError("the result is not a real number")
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > MAX_INT_BITS:
            raise ToolError(f"result is too large (limit is about 2**{MAX_INT_BITS})")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ToolError("result is too large or not a finite number")
        return value
    raise ToolError(f"unexpected value {value!r}")


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return f"name {node.id!r}"
    if isinstance(node, ast.Call):
        return "function calls"
    if isinstance(node, ast.Attribute):
        return f"attribute access .{node.attr}"
    if isinstance(node, ast.BinOp | ast.UnaryOp) and type(node.op) in _REFUSED_SYMBOLS:
        return f"operator {_REFUSED_SYMBOLS[type(node.op)]!r}"
    return type(node).__name__
