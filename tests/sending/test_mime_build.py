"""The directly written text/html entities decode to exactly what the email package's MIMEText
(the builder for messages with attachments) gives, for any text; and the whole message is
well-formed MIME with CRLF line endings and lines within RFC 5322's limit."""
from email import message_from_bytes
from email import policy as email_policy
from email.headerregistry import Address

from hypothesis import given, settings
from hypothesis import strategies as st

from sending.mime import Attachment, POLICY, _text_entity, _text_part, build_message

# Text as a client might send it: any characters (no lone surrogates: JSON refuses those), with
# every kind of line ending, long lines, trailing white space, dots and "From " at line starts.
pieces = st.one_of(
    st.text(max_size=200),
    st.sampled_from(["\r\n", "\n", "\r", " \n", "\t\r\n", ".", "From ", "=", "=\n", "é", "✉", "x" * 1200, "😀" * 40]),
)
texts = st.lists(pieces, max_size=12).map("".join).filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t))


def decoded(entity_bytes):
    part = message_from_bytes(entity_bytes, policy=email_policy.default)
    return part.get_content_type(), part.get_content_charset(), part["Content-Transfer-Encoding"], part.get_content()


@settings(max_examples=300, deadline=None)
@given(texts, st.sampled_from(["plain", "html"]))
def test_a_text_entity_decodes_like_mimetext(text, subtype):
    ours = decoded(_text_entity(text, subtype))
    reference = decoded(_text_part(text, subtype).as_bytes(policy=POLICY))
    assert ours == reference
    raw = _text_entity(text, subtype)
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def build(**overrides):
    values = dict(sender=Address("Åsa", "app", "example.com"), to=[Address("", "bob", "example.org")], cc=[], reply_to=[],
                  subject="Receipt", html="<p>Thanks ✉</p>", text="Thanks", attachments=[], headers=[],
                  message_id="abc@example.com")
    values.update(overrides)
    return build_message(**values)


def test_text_and_html_make_a_multipart_alternative_text_first():
    message = message_from_bytes(build(), policy=email_policy.default)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert parts[0].get_content() == "Thanks" and parts[1].get_content() == "<p>Thanks ✉</p>"
    assert message["Message-ID"] == "<abc@example.com>" and message["MIME-Version"] == "1.0"
    assert message.defects == [] and all(p.defects == [] for p in parts)


def test_one_body_is_a_single_part_and_none_is_an_empty_text_part():
    only_html = message_from_bytes(build(text=None), policy=email_policy.default)
    assert only_html.get_content_type() == "text/html" and only_html.get_content() == "<p>Thanks ✉</p>"
    neither = message_from_bytes(build(text=None, html=None), policy=email_policy.default)
    assert neither.get_content_type() == "text/plain" and neither.get_content() == ""


def test_attachments_still_build_a_mixed_message():
    attachment = Attachment(filename="r.pdf", content_type="application/pdf", content=b"%PDF-1.4 binary \x00\xff",
                            content_id=None, inline=False)
    message = message_from_bytes(build(attachments=[attachment]), policy=email_policy.default)
    assert message.get_content_type() == "multipart/mixed"
    body, pdf = message.iter_parts()
    assert body.get_content_type() == "multipart/alternative"
    assert pdf.get_filename() == "r.pdf" and pdf.get_content() == attachment.content
