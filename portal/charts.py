"""The dashboard's daily chart: one aggregate query, drawn as an inline SVG on the server (no
chart library, no JavaScript)."""
import calendar
import datetime
from dataclasses import dataclass

from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils.html import format_html, format_html_join

from sending.models import Recipient

SERIES = (("sent", "Sent", "#0b57d0"), ("delivered", "Delivered", "#137333"), ("bounced", "Bounced", "#b3261e"))


@dataclass
class Day:
    date: datetime.date
    sent: int = 0
    delivered: int = 0
    bounced: int = 0


def daily_counts(tenant, period):
    """Per day of the month starting at `period` (a date, first of the month, UTC): recipients
    submitted that day, and how many of those were delivered and bounced (by submission day, so
    the three numbers of a day describe the same mail). One GROUP BY over the month's messages,
    which the (tenant, -queued_at) index finds."""
    start = datetime.datetime.combine(period, datetime.time.min, tzinfo=datetime.UTC)
    days_in_month = calendar.monthrange(period.year, period.month)[1]
    end = start + datetime.timedelta(days=days_in_month)
    rows = (
        Recipient.objects.filter(tenant=tenant, message__tenant=tenant, message__queued_at__gte=start,
                                 message__queued_at__lt=end)
        .annotate(day=TruncDate("message__queued_at", tzinfo=datetime.UTC))
        .values("day")
        .annotate(sent=Count("id"), delivered=Count("id", filter=Q(status=Recipient.Status.DELIVERED)),
                  bounced=Count("id", filter=Q(status=Recipient.Status.BOUNCED)))
    )
    by_day = {row["day"]: row for row in rows}
    days = []
    for offset in range(days_in_month):
        date = period + datetime.timedelta(days=offset)
        row = by_day.get(date, {})
        days.append(Day(date, row.get("sent", 0), row.get("delivered", 0), row.get("bounced", 0)))
    return days


def _nice_ceiling(value):
    """A round axis maximum >= value (1, 2, 5, 10, 20, 50, ...)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def daily_chart_svg(days, *, width=720, height=260):
    """An accessible bar chart (role=img with a title and a description; each bar has a tooltip,
    and the page also shows the numbers as a table): sent, delivered and bounced per day."""
    left, right, top, bottom = 48, 8, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _nice_ceiling(max([max(d.sent, d.delivered, d.bounced) for d in days] + [1]))
    slot = plot_w / len(days)
    bar = max(slot * 0.8 / len(SERIES), 1)

    def y(value):
        return round(top + plot_h - plot_h * value / peak, 1)

    marks = sorted({0, peak // 2, peak}) if peak > 1 else [0, 1]
    grid = format_html_join(
        "", '<line x1="{}" y1="{}" x2="{}" y2="{}" class="grid"/><text x="{}" y="{}" class="axis" text-anchor="end">{}</text>',
        ((left, y(v), width - right, y(v), left - 6, y(v) + 4, f"{v:,}") for v in marks))
    labels = format_html_join(
        "", '<text x="{}" y="{}" class="axis" text-anchor="middle">{}</text>',
        ((round(left + (i + 0.5) * slot, 1), height - 8, d.date.day) for i, d in enumerate(days)
         if d.date.day == 1 or d.date.day % 5 == 0))
    bars = format_html_join(
        "", '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {} {}</title></rect>',
        ((round(left + i * slot + slot * 0.1 + n * bar, 1), y(getattr(d, key)), round(bar, 1),
          round(plot_h * getattr(d, key) / peak, 1), color, f"{d.date:%b} {d.date.day}", getattr(d, key), label.lower())
         for i, d in enumerate(days) for n, (key, label, color) in enumerate(SERIES) if getattr(d, key)))
    totals = {key: sum(getattr(d, key) for d in days) for key, _, _ in SERIES}
    description = (f"{days[0].date:%B %Y}: {totals['sent']:,} sent, {totals['delivered']:,} delivered, "
                   f"{totals['bounced']:,} bounced.")
    return format_html(
        '<svg viewBox="0 0 {w} {h}" role="img" aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">'
        '<title id="chart-title">Daily sent, delivered and bounced</title><desc id="chart-desc">{desc}</desc>'
        '<style>.grid{{stroke:#d9dde3;stroke-width:1}}.axis{{font:11px system-ui,sans-serif;fill:#4a5260}}</style>'
        '{grid}{labels}{bars}</svg>',
        w=width, h=height, desc=description, grid=grid, labels=labels, bars=bars,
    )
