"""The Jinja sandbox user templates run in, and `render`, which runs one under the time and size limits.

`BoundedSandbox` is jinja2's immutable sandbox (no Python internals, no mutation) that also refuses,
before doing the work, anything that would build a value past the character limit of
`studio.data.template_limits`: `range()` past MAX_RANGE; `*`, `**`, `+`, `%` and `~`; list, tuple and
dict literals; str methods that pad or repeat (ljust, center, zfill, expandtabs, replace, join,
translate, format); and every filter, whose inputs are weighed and whose result is measured (the ones
that pad or repeat also estimate it first). Jinja's own buffers (macros, `{% set %}` blocks) are joined
only within the limit. `render` runs a compiled template in the caller's thread under RENDER_SECONDS
(`studio.data.render_deadline`) and counts the characters it emits. The limits and the size
estimates live in `template_limits`; wording a `TemplateLimit` for people is `studio.data.templates`' job.
"""
from __future__ import annotations

import functools
import itertools
import re
import types
from typing import Any

from jinja2.compiler import CodeGenerator, optimizeconst
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter

from studio.data import render_deadline
from studio.data import template_limits as limits
from studio.data.template_limits import TemplateLimit, budget, char_limit, check, check_inputs, spend, weight

_DIGITS = re.compile(r"\d+")
_CHUNK = 4096  # output pieces taken from Jinja between two counts


class _BoundedFormatter(SandboxedFormatter):
    """str.format in the sandbox, refusing widths, precisions and totals past the limit."""

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        self._left = char_limit() - len(format_string)
        return super().vformat(format_string, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> Any:
        # Nested fields ({:>{}}) are already filled in here; any number in the spec may be a width.
        self._left -= max([weight(value, char_limit()), *map(int, _DIGITS.findall(format_spec))])
        if self._left < 0:
            check(char_limit() - self._left, "format()")
        return super().format_field(value, format_spec)


class _BoundedEscapeFormatter(_BoundedFormatter, SandboxedEscapeFormatter):
    pass


def _sum_lists(items: list, attribute: Any = None, start: Any = 0) -> Any:
    """The sum filter in linear time for lists and tuples (builtin sum copies them once per item)."""
    if attribute is None and isinstance(start, (list, tuple)) and all(type(i) is type(start) for i in items):
        return type(start)(itertools.chain(start, *items))
    return None


def _spend_result(result: Any, what: str, current: Any) -> Any:
    """Count a filter's or call's result as built: text by its length, a new list or dict by weight."""
    kind = type(result)
    if kind is str:
        size = len(result)
        if size <= current.chars and current.built + size <= current.total:  # the usual case, inline
            current.built += size
            return result
        spend(size, what, current)
    elif kind in (list, tuple, dict):
        spend(weight(result, current.chars), what, current)
    return result


def _bounded_filter(name: str, func: Any) -> Any:
    size_of = limits.FILTER_SIZES.get(name)
    what = f"|{name}"
    takes_all = name in ("join", "sum")  # may be given a one-shot generator; their estimates weigh every input
    first = 1 if hasattr(func, "jinja_pass_arg") else 0  # the filtered value comes after a context/environment

    @functools.wraps(func)  # keeps jinja_pass_arg, so Jinja still passes the context or environment
    def bounded(*args: Any, **kwargs: Any) -> Any:
        current = budget()
        if takes_all:
            if len(args) > first and not isinstance(args[first], (list, tuple)):
                args = (*args[:first], list(args[first]), *args[first + 1:])
        elif kwargs or len(args) != first + 1 or type(args[first]) is not str or len(args[first]) > current.chars:
            check_inputs(args[first:], what, current.chars)  # anything but one short text is weighed
            check_inputs(kwargs.values(), what, current.chars)
        if size_of is not None:
            check(size_of(*args[first:], **kwargs), what)
        result = _sum_lists(*args[first:], **kwargs) if name == "sum" else None
        return _spend_result(func(*args, **kwargs) if result is None else result, what, current)

    return bounded


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator with `~` and list, tuple and dict literals routed through size checks."""

    @optimizeconst
    def visit_Concat(self, node: Any, frame: Any) -> None:
        self.write("environment.join_values((")  # the sandbox never autoescapes: no Markup variant needed
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def _checked(self, visit: Any, node: Any, frame: Any) -> None:
        self.write("environment.checked_literal(")
        visit(node, frame)
        self.write(")")

    def visit_List(self, node: Any, frame: Any) -> None:
        self._checked(super().visit_List, node, frame)

    def visit_Dict(self, node: Any, frame: Any) -> None:
        self._checked(super().visit_Dict, node, frame)

    def visit_Tuple(self, node: Any, frame: Any) -> None:
        if node.ctx == "load":
            self._checked(super().visit_Tuple, node, frame)
        else:  # an assignment target such as `for key, value in ...`
            super().visit_Tuple(node, frame)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """ImmutableSandboxedEnvironment that refuses values past `char_limit()` before building them."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any):
        super().__init__(finalize=self._checked_output, **options)
        self.globals["range"] = limits.bounded_range
        self.filters = {name: _bounded_filter(name, func) for name, func in self.filters.items()}

    @staticmethod
    def _checked_output(value: Any) -> Any:
        """Every {{ }} goes through here: text as it is (`_emit` counts it), anything else weighed first."""
        if type(value) is not str:
            check(weight(value, char_limit()), "{{ }}")
        return value

    @staticmethod
    def concat(pieces: Any) -> str:
        """Jinja's buffers (macros, {% set %} and {% filter %} blocks), joined only within the limit."""
        pieces = pieces if isinstance(pieces, list) else list(pieces)
        spend(sum(map(len, pieces)), "a block's text")
        return "".join(pieces)

    @staticmethod
    def join_values(values: tuple) -> str:
        limit, size = char_limit(), 0
        for value in values:
            size += len(value) if type(value) is str else weight(value, limit)
        spend(size, "~")
        return "".join(map(str, values))

    @staticmethod
    def checked_literal(value: Any) -> Any:
        spend(weight(value, char_limit()), "[...]" if isinstance(value, list) else "(...)" if isinstance(
            value, tuple) else "{...}")
        return value

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        spend(limits.binop_size(operator, left, right), operator)
        return self.binop_table[operator](left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        owner, what = getattr(__obj, "__self__", None), "call()"
        if isinstance(owner, (str, bytes)) and __obj.__name__ in limits.STR_METHODS_THAT_GROW:
            name = __obj.__name__
            what = f"{name}()"
            if name == "join" and args and not isinstance(args[0], (list, tuple)):
                args = (list(args[0]), *args[1:])  # weigh what a generator yields, then join that
            check_inputs((owner,), what, char_limit())
            check(limits.str_method_size(owner, name, args, kwargs), what)
        elif __obj is __self.globals.get("lipsum"):
            given = {**dict(zip(("n", "html", "min", "max"), args)), **kwargs}
            n, longest = given.get("n", 5), given.get("max", 100)
            check(n * longest * 12 if isinstance(n, int) and isinstance(longest, int) else 0, "lipsum()")
        current = budget()
        if args:
            check_inputs(args, what, current.chars)
        if kwargs:
            check_inputs(kwargs.values(), what, current.chars)
        result = super().call(__context, __obj, *args, **kwargs)
        if type(result) is list and isinstance(owner, (str, bytes)):  # split() and kin: pieces of the owner
            spend(len(owner) + 4 * len(result) + 2, what, current)
            return result
        return _spend_result(result, what, current)

    def wrap_str_format(self, value: Any) -> Any:
        """str.format / format_map through the bounded formatter (jinja2's own, plus the checks)."""
        if not (isinstance(value, (types.MethodType, types.BuiltinMethodType))
                and value.__name__ in ("format", "format_map") and isinstance(value.__self__, str)):
            return None
        text, is_map = value.__self__, value.__name__ == "format_map"
        formatter = (_BoundedEscapeFormatter(self, escape=text.escape) if hasattr(text, "__html__")
                     else _BoundedFormatter(self))

        def bounded_format(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                args, kwargs = (), args[0]
            return type(text)(formatter.vformat(text, args, kwargs))  # counted as built by `call`

        return functools.update_wrapper(bounded_format, value)


# --- compiling and rendering ----------------------------------------------------------------------------

def _template_line(template: Any, exc: BaseException) -> int | None:
    """The template line a timeout landed on, from the compiled code's frames."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return line


def within_limits(max_chars: int | None, fn: Any, *args: Any) -> Any:
    """`fn(*args)` under RENDER_SECONDS with a fresh budget of `max_chars` (MAX_OUTPUT_CHARS): the
    renders it makes (the parts of one example) share both."""
    previous = limits.start_budget(max_chars)
    try:
        return render_deadline.run_with_deadline(limits.RENDER_SECONDS, fn, *args)
    except render_deadline.DeadlineExceeded:
        raise TemplateLimit("time", limits.RENDER_SECONDS) from None
    finally:
        limits.restore_budget(previous)


def compile_source(env: BoundedSandbox, source: str) -> Any:
    """`env.from_string(source)` within the limits (constant parts are evaluated while compiling)."""
    return within_limits(None, env.from_string, source)


def _new_context(template: Any, context: dict) -> Any:
    """Template.new_context(context), without copying the template's globals (a ChainMap, slow to
    iterate) on every call: they are read once per template into a plain dict."""
    plain = template.__dict__.get("_plain_globals")
    if plain is None:
        plain = template._plain_globals = dict(template.globals)
    env = template.environment
    return env.context_class(env, {**plain, **context}, template.name, template.blocks, globals=plain)


def _emit(template: Any, context: dict, max_chars: int) -> str:
    """What Template.render does, with the output counted as it comes, a chunk of pieces at a time."""
    pieces: list[str] = []
    size = 0
    try:
        stream = template.root_render_func(_new_context(template, context))
        while True:
            chunk = list(itertools.islice(stream, _CHUNK))
            pieces += chunk
            size += sum(map(len, chunk))
            if size > max_chars or len(pieces) > max_chars:  # a loop of empty pieces is stopped too
                raise TemplateLimit("output", max_chars, size=size)
            if len(chunk) < _CHUNK:
                return "".join(pieces)
    except Exception:
        template.environment.handle_exception()  # re-raises with the template's own line numbers


def render(template: Any, context: dict, max_chars: int | None = None) -> str:
    """The template's text for `context`, within the limits of the caller's `within_limits` if there
    is one, else within its own (RENDER_SECONDS and `max_chars`)."""
    if not limits.rendering():
        return within_limits(max_chars, render, template, context)
    try:
        return _emit(template, context, char_limit())
    except render_deadline.DeadlineExceeded as exc:
        # Delivered once per deadline, so it may become an ordinary error here, with the line it hit.
        raise TemplateLimit("time", limits.RENDER_SECONDS, line=_template_line(template, exc)) from None
