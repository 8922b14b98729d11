"""Bounded prompt templates: a user template past the time, output, value or range limit is one StudioError
sentence (never a raw MemoryError, RecursionError or a process that keeps a core busy), normal templates
render exactly as jinja2's own sandbox renders them, and a thread that timed out is left clean."""
from __future__ import annotations

import json
import string
import threading
from pathlib import Path

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from studio.data import render_deadline, template_limits
from studio.data import templates as T
from studio.data.template_store import get_template
from studio.errors import StudioError

RECORD = {"instruction": "Add the two numbers.", "input": "2 and 3", "output": "The sum is 5."}
NEVER_ENDS = ("{% for i in range(10000) %}{% for j in range(10000) %}{% for k in range(10000) %}"
              "{% endfor %}{% endfor %}{% endfor %}")
SPANISH = json.loads((Path(T.__file__).parents[1] / "locales/es/errors-templates.json").read_text(encoding="utf-8"))


def _refusal(prompt: str, response: str = "{{ output }}", record: dict = RECORD) -> StudioError:
    with pytest.raises(StudioError) as caught:
        T.render_example(T.custom_template(prompt, response), record)
    error = caught.value
    assert error.field == "data.template" and "\n" not in str(error) and str(error).endswith(".")
    # The Spanish sentence exists and its placeholders are all given by the error.
    wanted = {name for _, name, _, _ in string.Formatter().parse(SPANISH[f"error.{error.key}"]) if name}
    assert wanted <= set(error.params), error.key
    return error


@pytest.fixture
def short_time_limit(monkeypatch):
    # The loops below never end, so the limit is always met; a short one only keeps the test quick.
    monkeypatch.setattr(template_limits, "RENDER_SECONDS", 0.5)


def test_nested_range_loops_stop_at_the_time_limit_with_one_sentence(short_time_limit):
    error = _refusal(NEVER_ENDS)
    assert error.key == "data.templates.too_slow" and error.params == {"part": "prompt", "seconds": "0.5"}
    assert str(error) == ("Template line 1: the template took longer than 0.5 s to render one example; remove long "
                          "or nested loops.")
    assert _refusal("{{ output }}", NEVER_ENDS).params["part"] == "response"
    assert not template_limits.rendering() and not render_deadline._WATCHDOG._calls


@pytest.mark.parametrize("prompt, what, size", [
    ("{{ 'x' * 3000000000 }}", "*", 3_000_000_000),
    ("{{ [1] * 1000000000 }}", "*", None),
    ("{{ 1000000000 * ['ab'] }}", "*", None),
    ("{{ 10 ** (10 ** 9) }}", "**", 1_000_000_001),
    ("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "~",
     1_048_576),
    ("{% set ns = namespace(s=[0]) %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", "+", None),
    ("{% set x = 'x' * 600000 %}{{ [x, x] }}", "[...]", None),
])
def test_repeating_past_the_limit_is_refused_before_it_is_built(prompt, what, size):
    error = _refusal(prompt)
    assert error.key == "data.templates.too_big" and error.params["what"] == what
    assert error.params["limit"] == template_limits.MAX_OUTPUT_CHARS and error.params["size"] > error.params["limit"]
    assert size is None or error.params["size"] == size
    assert f"{what} would build about" in str(error) and "repeat or pad less" in str(error)


@pytest.mark.parametrize("prompt, what", [
    ("{{ 'x'.ljust(10 ** 9) }}", "ljust()"),
    ("{{ 'x'.rjust(999999999) }}", "rjust()"),
    ("{{ 'x'.center(999999999) }}", "center()"),
    ("{{ '1'.zfill(999999999) }}", "zfill()"),
    ("{{ ('\t' * 100).expandtabs(10 ** 8) }}", "expandtabs()"),
    ("{{ ('x' * 1000).replace('x', 'y' * 100000) }}", "replace()"),
    ("{{ '{:>999999999}'.format(1) }}", "format()"),
    ("{{ '{:>{}}'.format(1, 999999999) }}", "format()"),
    ("{{ '{:.999999999f}'.format(1.0) }}", "format()"),
    ("{{ '{x:>999999999}'.format_map({'x': 1}) }}", "format()"),
    ("{{ '%999999999d' % 1 }}", "%"),
    ("{{ '%*d' % (999999999, 1) }}", "%"),
    ("{{ '%.999999999f'|format(1.0) }}", "|format"),
    ("{{ 'x'|center(999999999) }}", "|center"),
    ("{{ 'a\nb'|indent(999999999) }}", "|indent"),
    ("{{ ('x ' * 400000)|wordwrap(1, wrapstring='y' * 1000) }}", "|wordwrap"),
    ("{{ ('x' * 1000)|replace('x', 'y' * 100000) }}", "|replace"),
    ("{{ {'a': [[1]]}|tojson(indent=10 ** 8) }}", "|tojson"),
    ("{{ [1]|batch(10 ** 9, 0)|list }}", "|batch"),
    ("{{ lipsum(10 ** 8) }}", "lipsum()"),
])
def test_huge_widths_and_pads_are_refused(prompt, what):
    error = _refusal(prompt)
    assert error.key == "data.templates.too_big" and error.params["what"] == what


def test_output_past_the_cap_is_one_sentence(monkeypatch):
    monkeypatch.setattr(template_limits, "MAX_OUTPUT_CHARS", 1000)
    error = _refusal("{% for i in range(100) %}{{ instruction }}{% endfor %}")
    assert error.key == "data.templates.too_long" and error.params == {"part": "prompt", "limit": 1000}
    assert str(error) == "Template: the text of one example passed 1,000 characters; repeat less text."
    assert _refusal("{% for i in range(10000) %}x{% endfor %}").key == "data.templates.too_long"
    # A record longer than half the cap may still be written out: its own length is never the problem.
    long_record = {**RECORD, "input": "word " * 400}
    assert T.render_example(T.custom_template("{{ input }}{{ input }}"), long_record)["prompt"] == "word " * 800


def test_all_the_text_built_on_the_way_is_capped_too(monkeypatch):
    monkeypatch.setattr(template_limits, "MAX_OUTPUT_CHARS", 10_000)
    monkeypatch.setattr(template_limits, "MAX_BUILT_CHARS", 100_000)
    # Each value is small and nothing is written, yet a thousand large strings are made.
    error = _refusal("{% set y = range(1000)|map('string')|map('center', 5000)|list %}{{ y|length }}")
    assert error.key == "data.templates.built_too_much" and error.params["limit"] == 100_000


def test_range_past_the_cap_and_deep_recursion_are_sentences():
    error = _refusal("{% for i in range(100000) %}{% endfor %}")
    assert error.key == "data.templates.range_too_big"
    assert error.params == {"part": "prompt", "size": 100_000, "limit": template_limits.MAX_RANGE}
    assert _refusal("{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}").key == "data.templates.too_deep"
    for nested in ("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", "{{ input" + "|trim" * 3000 + " }}"):
        with pytest.raises(StudioError) as caught:
            T.custom_template(nested)
        assert caught.value.key == "data.templates.too_deep"


NORMAL_TEMPLATES = [
    "{{ instruction|upper }} / {{ input|default('none') }} / {{ '%s-%03d'|format(output, 7) }} / {{ output ~ '!' }}",
    "{% for w in instruction.split() %}{{ loop.index }}:{{ w|title }} {% endfor %}{{ [input, output]|join('|') }}",
    "{% macro q(x, sep='.') %}[{{ x }}{{ sep }}]{% endmacro %}{{ q(input) }}{{ q(output, sep='!') }}",
    "{% set ns = namespace(n=0) %}{% for c in instruction %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}",
    "{{ '{:>12}|{:.2f}'.format(input, 3.14159) }} {{ input.ljust(10) }}| {{ 'ab' * 3 }} {{ 2 ** 10 }} {{ 7 % 3 }}",
    "{{ {'a': input, 'b': [1, 2]}|tojson }} {{ (1, 2) }} {{ instruction|wordwrap(8) }} {{ input|center(11) }}",
    "{% set block %}{{ input|indent(2, true) }}{% endset %}{{ block }}{% filter upper %}{{ output }}{% endfilter %}",
    "{{ [[1], [2, 3]]|sum(start=[]) }} {{ range(4)|batch(3, 0)|list }} {{ input.replace('and', '&') }}",
]


@pytest.mark.parametrize("prompt", NORMAL_TEMPLATES)
def test_normal_templates_render_exactly_as_the_plain_sandbox_does(prompt):
    plain = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    expected = plain.from_string(prompt).render(T.template_context(RECORD))
    assert T.render_example(T.custom_template(prompt), RECORD) == {"prompt": expected, "response": RECORD["output"]}


@pytest.mark.parametrize("name", [n for n, t in T.BUILTIN_TEMPLATES.items() if t.kind == "text"])
def test_builtin_templates_render_as_before(name):
    template = get_template(name)
    plain = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    for record in (RECORD, {**RECORD, "input": ""}):
        context = T.template_context(record, "Be brief.")
        rendered = T.render_example(template, record, system_prompt="Be brief.", seed=3, index=5)
        source = T._choose_prompt(template, record, context, 3, 5)
        assert rendered["prompt"] == plain.from_string(source).render(context)


def _busy_python(turns: int = 200_000) -> int:
    # Plain Python work: a pending asynchronous exception would be raised somewhere in here.
    total = 0
    for i in range(turns):
        total += i % 7
    return total


def test_a_thread_that_timed_out_is_usable_and_gets_no_stray_exception(short_time_limit):
    outcome: dict = {}

    def worker():
        try:
            outcome["timeout"] = _refusal(NEVER_ENDS).key
            outcome["busy"] = _busy_python()
            outcome["after"] = T.render_example(get_template("alpaca"), RECORD)["response"]
        except BaseException as exc:  # a stray DeadlineExceeded would land here
            outcome["stray"] = repr(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert outcome == {"timeout": "data.templates.too_slow", "busy": _busy_python(), "after": RECORD["output"]}


def test_renders_ending_near_their_deadline_never_leave_an_exception_behind(monkeypatch):
    # A deadline about as long as the render itself, so some end just before it, some just after, and the
    # watchdog often fires while a render is finishing: each render returns text or the timeout sentence,
    # and nothing arrives afterwards.
    monkeypatch.setattr(template_limits, "RENDER_SECONDS", 0.002)
    template = T.custom_template("{% for i in range(2000) %}{{ i }}{% endfor %}")
    outcomes = set()
    for _ in range(300):
        try:
            outcomes.add(len(T.render_example(template, RECORD)["prompt"]))
        except StudioError as error:
            assert error.key == "data.templates.too_slow"
            outcomes.add(error.key)
        _busy_python(2_000)
    _busy_python()
    assert outcomes <= {"data.templates.too_slow", len("".join(map(str, range(2000))))}
    assert not render_deadline._WATCHDOG._calls and not template_limits.rendering()


def test_every_bounds_error_key_has_a_spanish_sentence():
    keys = {"too_slow", "too_long", "too_big", "built_too_much", "range_too_big", "too_deep", "out_of_memory"}
    assert set(SPANISH) == {f"error.data.templates.{key}" for key in keys}
