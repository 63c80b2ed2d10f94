"""``calculator``: arithmetic on a whitelisted syntax tree — never ``eval``.

The expression is parsed with ``ast.parse(mode="eval")`` and walked node by node; only number
literals, the arithmetic operators, a fixed table of ``math`` functions and constants are
understood. Every intermediate integer is bounded in size and every power is checked *before*
it is computed, so ``9**9**9`` is refused at once instead of eating the CPU.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from .._errors import ToolError
from .._tools import Tool

__all__ = ["calculator", "evaluate"]

MAX_EXPRESSION_CHARS = 1_000
MAX_NODES = 400
MAX_DEPTH = 60
MAX_INT_BITS = 4_096  # about 1 233 decimal digits
MAX_COMBINATORIC_N = 1_000

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}

_CONSTANTS: dict[str, float] = {
    "pi": math.pi,
    "e": math.e,
    "tau": math.tau,
}


def _small_int(name: str, value: Number) -> int:
    if isinstance(value, float):
        if not value.is_integer():
            raise ToolError(f"{name}() needs whole numbers")
        value = int(value)
    if abs(value) > MAX_COMBINATORIC_N:
        raise ToolError(f"{name}() is limited to arguments up to {MAX_COMBINATORIC_N}")
    return value


def _factorial(n: Number) -> int:
    return math.factorial(_small_int("factorial", n))


def _comb(n: Number, k: Number) -> int:
    return math.comb(_small_int("comb", n), _small_int("comb", k))


def _perm(n: Number, k: Number) -> int:
    return math.perm(_small_int("perm", n), _small_int("perm", k))


def _round(x: Number, digits: Number | None = None) -> Number:
    return round(x) if digits is None else round(x, _small_int("round", digits))


def _log(x: Number, base: Number | None = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


def _check(value: Any) -> Number:
    """Refuse results that are not real numbers or are too large to carry on with."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError("the result is not a real number")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ToolError(f"the result is too large (more than {MAX_INT_BITS} bits)")
    if isinstance(value, float) and math.isnan(value):
        raise ToolError("the result is not a number (NaN)")
    if isinstance(value, float) and math.isinf(value):
        raise ToolError("the result is too large (overflow to infinity)")
    return value


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(base, int) and isinstance(exponent, int) and exponent >= 0:
        # |base| >= 2**(bits-1), so this is a lower bound of the result's size: check first.
        if abs(base) > 1 and exponent * (base.bit_length() - 1) > MAX_INT_BITS:
            raise ToolError(f"the result is too large (more than {MAX_INT_BITS} bits)")
        return _check(base**exponent)
    try:
        result = math.pow(float(base), float(exponent))
    except ZeroDivisionError:
        raise ToolError("division by zero (0 to a negative power)") from None
    except OverflowError:
        raise ToolError("the result is too large (overflow)") from None
    except ValueError:
        if base == 0:
            raise ToolError("division by zero (0 to a negative power)") from None
        raise ToolError("the result is not a real number") from None
    return _check(result)


# name → (function, smallest and largest number of arguments)
_FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int]] = {
    "abs": (abs, 1, 1),
    "sqrt": (math.sqrt, 1, 1),
    "cbrt": (math.cbrt, 1, 1),
    "exp": (math.exp, 1, 1),
    "log": (_log, 1, 2),
    "ln": (math.log, 1, 1),
    "log2": (math.log2, 1, 1),
    "log10": (math.log10, 1, 1),
    "sin": (math.sin, 1, 1),
    "cos": (math.cos, 1, 1),
    "tan": (math.tan, 1, 1),
    "asin": (math.asin, 1, 1),
    "acos": (math.acos, 1, 1),
    "atan": (math.atan, 1, 1),
    "atan2": (math.atan2, 2, 2),
    "sinh": (math.sinh, 1, 1),
    "cosh": (math.cosh, 1, 1),
    "tanh": (math.tanh, 1, 1),
    "degrees": (math.degrees, 1, 1),
    "radians": (math.radians, 1, 1),
    "hypot": (math.hypot, 1, 8),
    "floor": (math.floor, 1, 1),
    "ceil": (math.ceil, 1, 1),
    "trunc": (math.trunc, 1, 1),
    "round": (_round, 1, 2),
    "min": (min, 1, 32),
    "max": (max, 1, 32),
    "gcd": (math.gcd, 1, 32),
    "lcm": (math.lcm, 1, 32),
    "factorial": (_factorial, 1, 1),
    "comb": (_comb, 2, 2),
    "perm": (_perm, 2, 2),
    "pow": (_power, 2, 2),
}
_INT_ONLY = {"gcd", "lcm"}


class _Evaluator:
    def __init__(self) -> None:
        self.nodes = 0

    def eval(self, node: ast.AST, depth: int = 0) -> Number:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ToolError(f"the expression is too long (more than {MAX_NODES} parts)")
        if depth > MAX_DEPTH:
            raise ToolError(f"the expression is nested too deeply (more than {MAX_DEPTH} levels)")
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ToolError(f"only numbers are allowed, not {type(value).__name__}")
            return _check(value)
        if isinstance(node, ast.BinOp):
            left = self.eval(node.left, depth + 1)
            right = self.eval(node.right, depth + 1)
            if isinstance(node.op, ast.Pow):
                return _power(left, right)
            function = _BINARY.get(type(node.op))
            if function is None:
                raise ToolError(f"operator {type(node.op).__name__} is not allowed")
            try:
                return _check(function(left, right))
            except ZeroDivisionError:
                raise ToolError("division by zero") from None
            except OverflowError:
                raise ToolError("the result is too large (overflow)") from None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            operand = self.eval(node.operand, depth + 1)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Name):
            if node.id in _CONSTANTS:
                return _CONSTANTS[node.id]
            hint = " (it is a function: call it)" if node.id in _FUNCTIONS else ""
            raise ToolError(f"unknown name {node.id!r}{hint}")
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        raise ToolError(f"{type(node).__name__} is not allowed in a calculator expression")

    def _call(self, node: ast.Call, depth: int) -> Number:
        if not isinstance(node.func, ast.Name):
            kind = type(node.func).__name__
            raise ToolError(f"{kind} is not allowed in a calculator expression")
        if node.func.id not in _FUNCTIONS:
            known = ", ".join(sorted(_FUNCTIONS))
            raise ToolError(f"unknown function {node.func.id!r}; known: {known}")
        name = node.func.id
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise ToolError(f"{name}() takes plain positional arguments only")
        function, least, most = _FUNCTIONS[name]
        if not least <= len(node.args) <= most:
            expected = str(least) if least == most else f"{least} to {most}"
            raise ToolError(f"{name}() takes {expected} arguments, got {len(node.args)}")
        args = [self.eval(arg, depth + 1) for arg in node.args]
        if name in _INT_ONLY and not all(isinstance(a, int) for a in args):
            raise ToolError(f"{name}() needs whole numbers")
        try:
            return _check(function(*args))
        except ToolError:
            raise
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
        except OverflowError:
            raise ToolError(f"{name}(): the result is too large (overflow)") from None
        except (ValueError, TypeError):
            raise ToolError(f"{name}(): argument out of range (math domain error)") from None


# multiplication sign, middle dot, division sign, minus sign, en dash, caret
_SYMBOLS = str.maketrans(
    {"\u00d7": "*", "\u00b7": "*", "\u00f7": "/", "\u2212": "-", "\u2013": "-", "^": "**"}
)


def evaluate(expression: str) -> Number:
    """The value of an arithmetic expression; ``ToolError`` says why one is refused."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"the expression is too long (limit {MAX_EXPRESSION_CHARS} characters)")
    text = expression.translate(_SYMBOLS).strip()
    if not text:
        raise ToolError("the expression is empty")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"not an arithmetic expression: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError):
        raise ToolError("not an arithmetic expression (too complex or malformed)") from None
    try:
        return _Evaluator().eval(tree.body)
    except RecursionError:
        raise ToolError("the expression is nested too deeply") from None


def _format(value: Number) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression exactly (integers) or in floating point.

    Supports + - * / // % ** (** may be written ^), parentheses, unary minus, the constants
    pi, e, tau and the functions abs, sqrt, cbrt, exp, log (log(x, base)), ln, log2,
    log10, sin, cos, tan, asin, acos, atan, atan2, sinh, cosh, tanh, degrees, radians, hypot,
    floor, ceil, trunc, round, min, max, gcd, lcm, factorial, comb, perm, pow. Angles are in
    radians. Results larger than about 1200 digits are refused.

    Args:
        expression: the expression, e.g. "123 * 456" or "sqrt(2) / 2"
    """
    return _format(evaluate(expression))


calculator = Tool(calculate, name="calculator", timeout=5.0, max_output_chars=2_000)
