"""Template rendering: `{{name}}`, `{{user.name}}`, `{{name | default:"there"}}`.

Pure Python, no Django and no I/O, so the send path, the preview endpoint and the admin share it.
A source is compiled once into a tuple of literal strings and placeholders, kept in a bounded LRU
keyed by a hash of its content; rendering is then a loop over the parts. There is no expression
language: a placeholder can only look a value up in the variables mapping, so nothing a tenant
writes can execute code, read files or reach Python attributes.
"""
import hashlib
import html as html_lib
import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

from dispatch_site.errors import ValidationFailed

MAX_TEMPLATE_CHARS = 512 * 1024  # per field (subject, html_body, text_body, master html)
MAX_RENDERED_CHARS = 5 * 1024 * 1024  # per rendered html or text
MAX_RENDERED_SUBJECT_CHARS = 16 * 1024
MAX_VARIABLES_CHARS = 256 * 1024  # keys + values of one variables object
MAX_VARIABLES_DEPTH = 10

CACHE_MAX_ENTRIES = 1024
CACHE_MAX_CHARS = 64 * 1024 * 1024


class TemplateSyntaxError(ValidationFailed):
    code = "TEMPLATE_SYNTAX_ERROR"
    default_message = "The template contains an invalid placeholder."


class TemplateTooLarge(ValidationFailed):
    code = "TEMPLATE_TOO_LARGE"
    default_message = "The template is too large."
    smtp_reply = (552, "5.3.4")


class RenderedTooLarge(ValidationFailed):
    code = "RENDERED_TOO_LARGE"
    default_message = "The rendered message is too large."
    smtp_reply = (552, "5.3.4")


class VariablesInvalid(ValidationFailed):
    code = "TEMPLATE_VARIABLES_INVALID"
    default_message = "template_variables is invalid."


class VariablesTooLarge(VariablesInvalid):
    code = "TEMPLATE_VARIABLES_TOO_LARGE"
    default_message = "template_variables is too large."
    smtp_reply = (552, "5.3.4")


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str | None
    text: str | None
    # Placeholders that had neither a value nor a default (rendered as ""), in order of appearance.
    missing: tuple = ()


@dataclass(frozen=True, slots=True)
class Placeholder:
    name: str  # as written, e.g. "user.name"
    path: tuple  # ("user", "name")
    default: str | None  # the inline default, if any


# Grammar of a placeholder; anything else between {{ }} is not a placeholder (see problems()).
_NAME = r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*"
_NAME_RE = re.compile(rf"\A{_NAME}\Z")
_STRING = r""""(?:[^"\\]|\\.){0,10000}"|'(?:[^'\\]|\\.){0,10000}'"""
_TAG_RE = re.compile(rf"\{{\{{\s*({_NAME})\s*(?:\|\s*default\s*:\s*({_STRING})\s*)?\}}\}}", re.DOTALL)
_UNESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)

# Line breaks (every form str.splitlines() and mail software may honour) and other control
# characters: in a header they would end the header or start a new one.
_HEADER_BREAKS_RE = re.compile("[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")
_HEADER_CONTROLS_RE = re.compile("[\x00-\x08\x0e-\x1f\x7f]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def is_valid_name(name):
    return bool(_NAME_RE.match(name))


def _compile(source):
    parts = []
    position = 0
    for match in _TAG_RE.finditer(source):
        if match.start() > position:
            parts.append(source[position : match.start()])
        name, quoted = match.group(1), match.group(2)
        default = _UNESCAPE_RE.sub(r"\1", quoted[1:-1]) if quoted is not None else None
        parts.append(Placeholder(name=name, path=tuple(name.split(".")), default=default))
        position = match.end()
    if position < len(source):
        parts.append(source[position:])
    return tuple(parts)


class _CompiledCache:
    """LRU of compiled sources keyed by a BLAKE2 digest of the content (the source itself is not
    kept), bounded by entry count and by the characters held in literal parts."""

    def __init__(self, max_entries, max_chars):
        self.max_entries, self.max_chars = max_entries, max_chars
        self._entries = OrderedDict()  # digest -> (parts, chars)
        self._chars = 0
        self._lock = threading.Lock()
        self.misses = 0

    def get(self, source):
        key = hashlib.blake2b(source.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry[0]
        parts = _compile(source)
        with self._lock:
            self.misses += 1
            if key not in self._entries:
                self._entries[key] = (parts, len(source))
                self._chars += len(source)
                while len(self._entries) > self.max_entries or (self._chars > self.max_chars and len(self._entries) > 1):
                    _, (_, chars) = self._entries.popitem(last=False)
                    self._chars -= chars
        return parts

    def clear(self):
        with self._lock:
            self._entries.clear()
            self._chars = 0
            self.misses = 0


_cache = _CompiledCache(CACHE_MAX_ENTRIES, CACHE_MAX_CHARS)


def compile_template(source):
    """The compiled parts of `source` (cached). Text between {{ }} that is not a valid
    placeholder stays literal here; problems() reports it when a template is saved."""
    return _cache.get(source)


def problems(source):
    """Human-readable syntax problems of `source`: '{{' that does not start a valid placeholder.
    Templates are checked with this when saved, so typos never reach a recipient."""
    found = []
    if "{{{" in source:
        found.append("Triple braces {{{...}}} are not supported: write {{name}}; values are escaped in HTML.")
    for part in compile_template(source):
        if isinstance(part, str) and "{{" in part:
            start = part.index("{{")
            snippet = part[start : start + 60].split("\n")[0]
            found.append(
                f"Invalid placeholder near {snippet!r}: use {{{{name}}}}, {{{{user.name}}}} or "
                f'{{{{name | default:"value"}}}}.'
            )
            if len(found) >= 10:
                break
    return found


def variable_names(source):
    """Placeholder names of `source` in order of first appearance."""
    return list(dict.fromkeys(p.name for p in compile_template(source) if isinstance(p, Placeholder)))


def checked_variables(variables, *, field="template_variables"):
    """`variables` (None -> {}) after checking it is a JSON-like object within the size and depth
    limits, with string keys and no NUL or unpaired surrogate characters."""
    if variables is None:
        return {}
    if not isinstance(variables, dict):
        raise VariablesInvalid(f"{field} must be an object.", details={field: ["must be an object"]})
    budget = MAX_VARIABLES_CHARS
    stack = [(variables, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_VARIABLES_DEPTH:
            raise VariablesTooLarge(
                f"{field} is nested more than {MAX_VARIABLES_DEPTH} levels deep.",
                details={field: [f"at most {MAX_VARIABLES_DEPTH} levels of nesting"]},
            )
        items = value.items() if isinstance(value, dict) else ((None, item) for item in value)
        for key, item in items:
            budget -= 2
            if key is not None:
                if not isinstance(key, str):
                    raise VariablesInvalid(f"{field} keys must be strings.", details={field: ["keys must be strings"]})
                budget -= len(key)
                _check_string(field, key)
            if isinstance(item, str):
                budget -= len(item)
                _check_string(field, item)
            elif isinstance(item, (dict, list)):
                stack.append((item, depth + 1))
            elif item is None or isinstance(item, (bool, int, float)):
                budget -= 8
            else:
                raise VariablesInvalid(
                    f"{field} values must be strings, numbers, booleans, null, objects or lists.",
                    details={field: ["unsupported value type"]},
                )
            if budget < 0:
                raise VariablesTooLarge(
                    f"{field} exceeds {MAX_VARIABLES_CHARS:,} characters.",
                    details={field: [f"at most {MAX_VARIABLES_CHARS} characters"]},
                )
    return variables


def _check_string(field, value):
    if "\x00" in value or _SURROGATE_RE.search(value):
        raise VariablesInvalid(
            f"{field} contains a NUL or an unpaired surrogate character.",
            details={field: ["invalid character"]},
        )


_MISSING = object()


def _lookup(variables, path):
    value = variables
    for key in path:
        if isinstance(value, dict):
            value = value.get(key, _MISSING)
            if value is _MISSING:
                return _MISSING
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return _MISSING
    return _MISSING if value is None else value


def value_text(value):
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def render(source, variables, *, escape_html, defaults=None, raw=None, limit=MAX_RENDERED_CHARS, missing=None):
    """Render `source` with `variables`.

    A placeholder takes, in order: its value from `variables` (nested keys walk objects; numeric
    segments index lists), its inline default, `defaults[name]` (template-level defaults), or "".
    Names that fell through to "" are appended to `missing` (a list) when given.
    `escape_html` escapes values (not the template's own text) for HTML. `raw` maps names to
    values inserted verbatim (the master template's {{content}}). The output is bounded by `limit`.
    """
    out = []
    size = 0
    for part in compile_template(source):
        if part.__class__ is str:
            value = part
        else:
            if raw is not None and part.name in raw:
                value = raw[part.name]
            else:
                found = _lookup(variables, part.path)
                if found is not _MISSING:
                    value = value_text(found)
                elif part.default is not None:
                    value = part.default
                elif defaults and defaults.get(part.name) is not None:
                    value = defaults[part.name]
                else:
                    value = ""
                    if missing is not None and part.name not in missing:
                        missing.append(part.name)
                if escape_html and value:
                    value = html_lib.escape(value, quote=True)
        size += len(value)
        if size > limit:
            raise RenderedTooLarge(f"The rendered output exceeds {limit:,} characters.")
        out.append(value)
    return "".join(out)


def fold_header(value):
    """A single-line header value: line breaks become one space, other control characters go."""
    if not value:
        return ""
    return _HEADER_CONTROLS_RE.sub("", _HEADER_BREAKS_RE.sub(" ", value.replace("\t", " "))).strip()


def render_subject(source, variables, *, defaults=None, missing=None):
    return fold_header(
        render(source, variables, escape_html=False, defaults=defaults, limit=MAX_RENDERED_SUBJECT_CHARS, missing=missing)
    )
