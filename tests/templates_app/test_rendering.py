"""The pure rendering module: syntax, escaping, lookups, defaults, bounds."""
import pytest

from templates_app import rendering
from templates_app.rendering import render, render_subject


def html(source, variables=None, **kwargs):
    return render(source, variables or {}, escape_html=True, **kwargs)


def text(source, variables=None, **kwargs):
    return render(source, variables or {}, escape_html=False, **kwargs)


def test_values_are_escaped_in_html_but_not_in_text_or_subject():
    value = {"name": "<script>alert('x')</script> & \"co\""}
    assert html("<p>Hi {{name}}</p>", value) == (
        "<p>Hi &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;co&quot;</p>"
    )
    assert text("Hi {{name}}", value) == "Hi <script>alert('x')</script> & \"co\""
    assert render_subject("Hi {{name}}", value) == "Hi <script>alert('x')</script> & \"co\""


def test_the_templates_own_markup_is_not_escaped():
    assert html('<a href="https://x.test/?a=1&b=2">{{v}}</a>', {"v": "go"}) == '<a href="https://x.test/?a=1&b=2">go</a>'


def test_nested_keys_and_list_indexes():
    variables = {"user": {"name": "Ann", "address": {"city": "Oslo"}}, "items": [{"sku": "A1"}, {"sku": "B2"}]}
    assert text("{{user.name}} {{ user.address.city }} {{items.1.sku}}", variables) == "Ann Oslo B2"
    missing = []
    assert text("[{{user.nope}}][{{items.9.sku}}][{{user.name.first}}]", variables, missing=missing) == "[][][]"
    assert missing == ["user.nope", "items.9.sku", "user.name.first"]


def test_inline_default_applies_only_when_the_value_is_missing_or_null():
    source = '{{ name | default:"there" }}|{{name|default:\'x "q" \\\' y\'}}'
    assert text(source, {}) == "there|x \"q\" ' y"
    assert text(source, {"name": None}) == "there|x \"q\" ' y"
    assert text(source, {"name": "Bo"}) == "Bo|Bo"
    assert text(source, {"name": ""}) == "|", "an empty string is a value, not a missing one"
    assert text('{{x | default:"a }} b"}}', {}) == "a }} b"


def test_defaults_are_escaped_in_html_too():
    assert html('{{x|default:"<b>"}}') == "&lt;b&gt;"


def test_missing_variables_render_empty_and_are_reported_once_in_order():
    missing = []
    out = text("{{b}} {{a}} {{b}} {{c|default:\"\"}}", {}, missing=missing)
    assert out == "   "
    assert missing == ["b", "a"]


def test_template_level_defaults_come_after_inline_defaults():
    missing = []
    source = '{{a}} {{b | default:"inline"}}'
    assert text(source, {}, defaults={"a": "A", "b": "template"}, missing=missing) == "A inline"
    assert missing == []


def test_non_string_values():
    variables = {"n": 3, "f": 1.5, "t": True, "off": False, "o": {"k": [1, "é"]}}
    assert text("{{n}} {{f}} {{t}} {{off}} {{o}}", variables) == '3 1.5 true false {"k":[1,"é"]}'


def test_no_attribute_access_or_code_execution():
    class Sneaky(dict):
        secret = "leaked"

    missing = []
    out = text("{{__class__}}{{v.__class__}}{{v.secret}}{{v.keys}}", {"v": Sneaky()}, missing=missing)
    assert out == ""
    assert "leaked" not in out
    # Things other engines evaluate are plain text here (and rejected when a template is saved).
    for source in ("{{ 7*7 }}", "{{ v.__init__.__globals__ }}x", "{% include '/etc/passwd' %}", "{{ open('/etc/passwd') }}"):
        assert "49" not in text(source, {"v": {}})
        assert "root:" not in text(source, {"v": {}})


def test_malformed_placeholders_stay_literal_and_are_reported_as_problems():
    source = "a {{ bad name }} b {{ok}} {{ unclosed"
    assert text(source, {"ok": "K"}) == "a {{ bad name }} b K {{ unclosed"
    found = rendering.problems(source)
    assert len(found) == 2 and "bad name" in found[0] and "unclosed" in found[1]
    assert rendering.problems("{{{raw}}}")[0].startswith("Triple braces")
    assert rendering.problems('{{a}} {{ b.c | default:"d" }} } {') == []


def test_variable_names_in_order_of_appearance():
    assert rendering.variable_names('{{b}}{{a.x}}{{b|default:"1"}}') == ["b", "a.x"]


@pytest.mark.parametrize(
    "value",
    ["x\r\nBcc: victim@example.com", "x\nBcc: v@e", "x\rBcc: v@e", "x\u2028Bcc: v@e", "x\x85Bcc: v@e", "x\x0bBcc: v@e"],
)
def test_line_breaks_in_subject_values_cannot_inject_headers(value):
    subject = render_subject("Hello {{v}}", {"v": value})
    assert "\r" not in subject and "\n" not in subject
    assert subject.splitlines() == [subject]
    assert subject.endswith("Bcc: v@e") or subject.endswith("Bcc: victim@example.com")


def test_fold_header_removes_controls_and_trims():
    assert rendering.fold_header("  a\r\n\r\n b\x00c\td \x7f") == "a  bc d"
    assert rendering.fold_header(None) == ""


def test_compiled_forms_are_cached_by_content():
    rendering._cache.clear()
    source = "Hello {{name}}, " + "x" * 1000
    for i in range(50):
        render(source, {"name": str(i)}, escape_html=True)
    assert rendering._cache.misses == 1
    render("".join(["Hello {{name}}, ", "x" * 1000]), {}, escape_html=True)  # equal content, new object
    assert rendering._cache.misses == 1
    render(source + "!", {}, escape_html=True)
    assert rendering._cache.misses == 2


def test_cache_is_bounded():
    cache = rendering._CompiledCache(max_entries=3, max_chars=10_000)
    for i in range(10):
        cache.get(f"{{{{v}}}} {i}")
    assert len(cache._entries) == 3
    cache.get("y" * 9_000)
    cache.get("z" * 9_000)
    assert cache._chars <= 10_000


def test_output_is_bounded_even_when_a_small_template_amplifies_a_value():
    source = "{{v}}" * 1000
    with pytest.raises(rendering.RenderedTooLarge) as caught:
        render(source, {"v": "x" * 10_000}, escape_html=False)  # would be 10 MB
    assert caught.value.status == 400 and caught.value.code == "RENDERED_TOO_LARGE"
    with pytest.raises(rendering.RenderedTooLarge):
        render_subject("{{v}}", {"v": "s" * (rendering.MAX_RENDERED_SUBJECT_CHARS + 1)})


def test_variables_must_be_a_bounded_json_like_object():
    assert rendering.checked_variables(None) == {}
    ok = {"a": [1, 2.5, None, True, {"b": "c"}]}
    assert rendering.checked_variables(ok) is ok
    with pytest.raises(rendering.VariablesInvalid):
        rendering.checked_variables(["not", "an", "object"])
    with pytest.raises(rendering.VariablesInvalid):
        rendering.checked_variables({"a": object()})
    with pytest.raises(rendering.VariablesInvalid):
        rendering.checked_variables({"a": "nul\x00"})
    with pytest.raises(rendering.VariablesInvalid):
        rendering.checked_variables({"a": "\ud800"})
    with pytest.raises(rendering.VariablesTooLarge) as caught:
        rendering.checked_variables({"a": "x" * (rendering.MAX_VARIABLES_CHARS + 1)})
    assert caught.value.code == "TEMPLATE_VARIABLES_TOO_LARGE" and caught.value.status == 400
    with pytest.raises(rendering.VariablesTooLarge):
        rendering.checked_variables({str(i): i for i in range(rendering.MAX_VARIABLES_CHARS // 8)})
    deep = current = {}
    for _ in range(rendering.MAX_VARIABLES_DEPTH + 1):
        current["d"] = {}
        current = current["d"]
    with pytest.raises(rendering.VariablesTooLarge):
        rendering.checked_variables(deep)


def test_pathological_sources_do_not_hang_the_parser():
    """A ReDoS guard, not a benchmark: these finish in milliseconds; quadratic parsing would not."""
    import time

    for source in ("{{" * 200_000, '{{a|default:"' * 30_000, "{{ " + " " * 400_000, "{{{{{{}}}}}}" * 40_000):
        started = time.perf_counter()
        rendering.problems(source)
        assert time.perf_counter() - started < 2, source[:20]
