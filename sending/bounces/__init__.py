"""Bounce and complaint handling, the pure part: classify SMTP replies, parse inbound reports, VERP.

Nothing here touches the database: callers (delivery engine, inbound MX processing) decide what to
store. See docs/bounces.md.
"""
from .classify import Classification, classify_reply
from .parse import RecipientResult, Report, parse_report

__all__ = ["Classification", "classify_reply", "RecipientResult", "Report", "parse_report"]
