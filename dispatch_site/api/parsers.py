"""The API's JSON parser: DRF's, plus the checks that keep hostile JSON out of the stack.

- Nesting deeper than MAX_DEPTH is refused (Python's decoder raises RecursionError on deep
  input, which DRF does not catch: a 500; moderately deep input would reach code that recurses).
- Duplicate keys are refused: `{"to": "a", "to": "b"}` means different things to different
  parsers (a proxy may check the first value while we would act on the last).
- Strings with NUL characters or unpaired surrogates (`"\\u0000"`, `"\\ud800"`) are refused:
  PostgreSQL cannot store NUL in text or JSON columns, and a lone surrogate cannot be encoded
  as UTF-8 for a header, a database column or an email.
"""
import codecs
import json

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.settings import api_settings

from dispatch_site.errors import ValidationFailed

MAX_DEPTH = 64


def _reject_constant(name):
    raise ValueError(f"{name} is not a valid JSON value")


def _object_without_duplicates(pairs):
    result = dict(pairs)
    if len(result) != len(pairs):
        seen = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ValueError(f'duplicate key "{duplicate[:100]}"')
    return result


def _bad_string(value):
    if "\x00" in value:
        return "NUL characters are not allowed"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "unpaired surrogate characters are not allowed"
    return None


def check_parsed(data):
    """Walk the parsed document without recursion: depth, then the text of keys and values."""
    stack = [(data, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else key
                if problem := _bad_string(key):
                    raise ValidationFailed(f"{where[:200]}: {problem} in keys", details={where[:200]: [problem]})
                stack.append((item, where, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value))
        elif isinstance(value, str) and (problem := _bad_string(value)):
            where = path or "body"
            raise ValidationFailed(f"{where[:200]}: {problem}", details={where[:200]: [problem]})


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
            data = json.loads(
                text,
                object_pairs_hook=_object_without_duplicates,
                parse_constant=_reject_constant if api_settings.STRICT_JSON else None,
            )
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        check_parsed(data)
        return data
