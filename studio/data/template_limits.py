"""The bounds on user templates, and the size of an operation's result worked out before it runs.

Four limits (module constants; tests lower them): how long one render may take, how many characters
it may emit, how many it may build in all on the way (every filter result, `~`, `*` and so on), and
how long a `range()` may be. A `Budget` per render and thread carries them. `weight` estimates how many
characters a value turns into as text, stopping early; the `*_size` functions estimate what `*`, `**`,
`+`, `%`, a str method or a filter would build, from its arguments alone. Checking first matters: one C
call such as `'x' * 3000000000` cannot be interrupted, only refused. Going past a bound raises
`TemplateLimit`. Where the checks are made is `studio.data.template_sandbox`'s job; wording them for
people is `studio.data.templates`'.
"""
from __future__ import annotations

import itertools
import math
import re
import threading
from typing import Any

from jinja2.runtime import Namespace

# A normal template renders an example in about 15 µs; 2 s is 100,000 times that, so only a runaway
# loop meets it, and a preview still answers within a moment.
RENDER_SECONDS = 2.0
# About 250,000 tokens: far past any max_length the studio trains with, yet a few MB, so many
# previews at once cannot exhaust memory. A record longer than half of it gets twice its own length.
# It also caps every single value a template builds.
MAX_OUTPUT_CHARS = 1_000_000
# All the text one render may build, intermediate values included: room to run a few filters over
# every field of a long record, while a pipeline such as `range(9999)|map('replace', ...)` that makes
# thousands of large strings stops at some tens of MB.
MAX_BUILT_CHARS = 20 * MAX_OUTPUT_CHARS
# Enough to number any list a record holds; two nested loops (10^8 turns) meet the time limit.
MAX_RANGE = 10_000

_LOCAL = threading.local()
_VIEWS = (type({}.keys()), type({}.values()), type({}.items()))
_CONTAINERS = (list, tuple, set, frozenset, dict, *_VIEWS)
_SCALARS = frozenset({int, float, bool, type(None)})


class TemplateLimit(Exception):
    """A template went past a bound. `kind`: "time" (limit in s), "output", "value", "built" or "range"."""

    def __init__(self, kind: str, limit: float, what: str = "", size: int = 0, line: int | None = None):
        super().__init__(f"{kind} limit {limit} exceeded by {what or 'the template'} ({size})")
        self.kind, self.limit, self.what, self.size, self.line = kind, limit, what, size, line


class Budget:
    """The character limits of one render: `chars` per value and for the output, `total` for all
    the text built, of which `built` is used."""

    __slots__ = ("chars", "total", "built")

    def __init__(self, chars: int | None = None):
        self.chars = chars or MAX_OUTPUT_CHARS
        self.total = MAX_BUILT_CHARS * self.chars // MAX_OUTPUT_CHARS  # a long record gets more of both
        self.built = 0


def start_budget(chars: int | None = None) -> Budget | None:
    """Give this thread a fresh Budget; returns the one it had, for `restore_budget`."""
    previous = getattr(_LOCAL, "budget", None)
    _LOCAL.budget = Budget(chars)
    return previous


def restore_budget(previous: Budget | None) -> None:
    _LOCAL.budget = previous


def rendering() -> bool:
    """Whether this thread is inside a render's limits (`template_sandbox.within_limits`)."""
    return getattr(_LOCAL, "budget", None) is not None


def budget() -> Budget:
    """This thread's Budget; outside a render, a fresh default one each time (nothing accumulates)."""
    return getattr(_LOCAL, "budget", None) or Budget()


def char_limit() -> int:
    """The per-value and output character limit of the render running in this thread."""
    return budget().chars


def output_limit(context: dict) -> int:
    """MAX_OUTPUT_CHARS, or twice the record's own size for a record longer than half of it."""
    size = 0
    for value in context.values():
        size += len(value) if type(value) is str else weight(value, MAX_OUTPUT_CHARS)
    if 2 * size <= MAX_OUTPUT_CHARS:
        return MAX_OUTPUT_CHARS
    return max(MAX_OUTPUT_CHARS, 2 * weight(list(context.values()), stop_after=10**15))  # weighed in full


def weight(value: Any, stop_after: int) -> int:
    """About how many characters `str(value)` has, counted only until the count passes `stop_after`
    (every item adds at least one, so shared or cyclic structures end too)."""
    if type(value) is str:
        return len(value)
    total, stack = 0, [value]
    while stack and total <= stop_after:
        item = stack.pop()
        if isinstance(item, (str, bytes)):
            total += len(item) + 2
        elif isinstance(item, int):  # bools too
            total += item.bit_length() * 3 // 10 + 2
        elif isinstance(item, _CONTAINERS):
            total += 4 * len(item) + 2
            if total <= stop_after:
                for child in (itertools.chain(item.keys(), item.values()) if isinstance(item, dict) else item):
                    if type(child) is str:  # most items: counted here rather than through the stack
                        total += len(child) + 2
                    else:
                        stack.append(child)
        elif isinstance(item, Namespace):
            total += 16
            stack.append(item._Namespace__attrs)  # its repr shows its attributes
        else:  # floats, None, ranges, macros, loop objects: short reprs
            total += 24
    return total


def check(size: int, what: str) -> None:
    """TemplateLimit when one value of `size` characters would pass this render's limit."""
    limit = budget().chars
    if size > limit:
        raise TemplateLimit("value", limit, what, size)


def spend(size: int, what: str, current: Budget | None = None) -> None:
    """`check`, and count `size` characters as built by this render."""
    current = current or budget()
    if size > current.chars:
        raise TemplateLimit("value", current.chars, what, size)
    current.built += size
    if current.built > current.total:
        raise TemplateLimit("built", current.total, what, current.built)


def check_inputs(values: Any, what: str, limit: int) -> None:
    """TemplateLimit when a value given to `what` is already past `limit` as text."""
    for value in values:
        kind = type(value)
        if kind is str:  # the common case, kept cheap: this runs for every filter and call
            if len(value) > limit:
                check(len(value), what)
        elif kind not in _SCALARS:
            check(weight(value, limit), what)


def bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateLimit("range", MAX_RANGE, "range()", len(numbers))
    return numbers


# --- sizes of operations, before they run ---------------------------------------------------------------

_PRINTF_NUMBERS = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")
_PRINTF_WIDTH = re.compile(r"%(?:\([^)]*\))?[#0 +-]*[*.\d]")


def percent_size(fmt: Any, args: Any) -> int:
    """Characters `fmt % args` may produce: the format, its arguments and every width or precision."""
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else str(fmt)
    if not _PRINTF_WIDTH.search(text):  # the usual "%s and %d": only the text and the arguments
        return len(text) + weight(args, char_limit())
    numbers = [int(n) for spec in _PRINTF_NUMBERS.findall(text) for n in spec if n.isdigit()]
    if "*" in text:  # widths taken from the arguments
        numbers += [abs(v) for v in (args if isinstance(args, tuple) else (args,)) if isinstance(v, int)]
    return len(text) + weight(args, char_limit()) + sum(numbers)


def binop_size(operator: str, left: Any, right: Any) -> int:
    limit = char_limit()
    if operator == "*":
        if isinstance(right, (str, bytes, list, tuple)):
            left, right = right, left
        if isinstance(left, (str, bytes, list, tuple)) and isinstance(right, int):
            return weight(left, limit) * max(right, 0)
        if isinstance(left, int) and isinstance(right, int):
            return (left.bit_length() + right.bit_length()) * 3 // 10
    elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
        return int(right * math.log10(abs(left))) + 1 if abs(left) > 1 else 1  # its decimal digits
    elif operator == "+" and isinstance(left, (str, bytes, list, tuple)):
        return weight(left, limit) + weight(right, limit)
    elif operator == "%" and isinstance(left, (str, bytes)):
        return percent_size(left, right)
    return 0


def replace_size(s: Any, old: Any, new: Any, count: Any = -1) -> int:
    if not (isinstance(old, (str, bytes)) and isinstance(new, (str, bytes))):
        return 0
    hits = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(s) + hits * max(len(new) - len(old), 0)


def join_size(separator: Any, items: list) -> int:
    limit = char_limit()
    return len(separator) * max(len(items) - 1, 0) + sum(weight(item, limit) for item in items)


# The str/bytes methods whose result can be much longer than the string and its arguments.
STR_METHODS_THAT_GROW = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "replace", "join", "translate"})


def str_method_size(s: Any, name: str, args: tuple, kwargs: dict) -> int:
    """Characters a str/bytes method that pads or repeats would return; 0 for the others."""
    arg = args[0] if args else None
    if name in ("center", "ljust", "rjust", "zfill"):
        return arg if isinstance(arg, int) else 0
    if name == "expandtabs":
        tab = kwargs.get("tabsize", 8) if arg is None else arg
        return len(s) + s.count("\t" if isinstance(s, str) else b"\t") * tab if isinstance(tab, int) else 0
    if name == "replace" and len(args) >= 2:
        return replace_size(s, args[0], args[1], args[2] if len(args) > 2 else kwargs.get("count", -1))
    if name == "join" and args:
        return join_size(s, args[0])
    if name == "translate" and arg is not None:
        table = arg.values() if isinstance(arg, dict) else arg if isinstance(arg, (list, tuple)) else ()
        return len(s) * max((len(v) for v in table if isinstance(v, (str, bytes))), default=1)
    return 0


def _text(value: Any) -> Any:
    return value if isinstance(value, (str, bytes)) else str(value)


def _depth(value: Any, stop_after: int) -> int:
    """How deeply lists and dicts nest in `value` (counted up to `stop_after`)."""
    deepest, stack = 0, [(value, 1)]
    while stack and deepest < stop_after:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, (list, tuple)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in item)
    return deepest


def _lines_after_wrap(s: str, width: Any) -> int:
    # A wrapped line and the next are longer than `width` together, or the next word would have fit.
    return 2 * len(s) // max(width, 1) + s.count("\n") + 1 if isinstance(width, int) else len(s) + 1


def _urls(s: str) -> int:
    return sum(1 for word in s.split() if "." in word or "@" in word or ":" in word)


# What each filter that pads or repeats may build, from its arguments (less the context or environment
# Jinja passes first to some). Only growth beyond a constant factor matters here: every filter's result
# is measured once it is built.
FILTER_SIZES = {
    "center": lambda value, width=80: width if isinstance(width, int) else 0,
    "indent": lambda s, width=4, first=False, blank=False: len(_text(s)) + (
        width if isinstance(width, int) else len(_text(width))) * (_text(s).count("\n") + 1),
    "wordwrap": lambda s, width=79, long=True, wrapstring=None, hyphens=True: len(_text(s)) + len(
        wrapstring or "\n") * _lines_after_wrap(_text(s), width),
    "replace": lambda s, old, new, count=None: replace_size(_text(s), old, new, count),
    "join": lambda items, d="", attribute=None: join_size(_text(d), items),
    "format": lambda value, *args, **kwargs: percent_size(value, kwargs or args),
    "batch": lambda value, linecount, fill_with=None: linecount if isinstance(linecount, int) and (
        fill_with is not None) else 0,
    "slice": lambda value, slices, fill_with=None: slices if isinstance(slices, int) else 0,
    "sum": lambda items, attribute=None, start=0: 0 if isinstance(start, (int, float)) else weight(
        start, char_limit()) + sum(weight(item, char_limit()) for item in items),
    "tojson": lambda value, indent=None: weight(value, char_limit()) * (1 + (
        indent if isinstance(indent, int) else len(_text(indent or ""))) * _depth(value, char_limit())),
    "urlize": lambda value, trim=None, nofollow=False, target=None, rel=None, schemes=None: len(
        _text(value)) + _urls(_text(value)) * (len(_text(target or "")) + len(_text(rel or ""))),
}
